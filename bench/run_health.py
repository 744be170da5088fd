"""Foundation benchmark: the gateway's GET /health against bare Starlette on uvicorn.

    .venv/bin/python bench/run_health.py [--runs 5] [--duration 10] [--connections 64]

Both servers start once, as child processes on free loopback ports, and stay up for the
whole run. Each server gets one warm-up load, then measured runs alternate between them
in ABBA order (gateway, bare, bare, gateway, ...), so slow drift of a noisy machine
lands on both sides evenly. Figures are medians across runs. Besides wrk's requests/s
and latency percentiles, the server's own CPU time per request is read from /proc: on a
shared 2-core machine it moves less than throughput does.

Results go to bench/results/health.json and server logs to bench/results/logs/.
`--bare-vs-bare` replaces the gateway with a second bare server: the ratio it prints is
the noise floor of this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import wrk
from servers import Server, ServerError, free_ports
from wrk import WrkError, WrkParams, WrkResult

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

# Backends the gateway needs when not embedded; the environment overrides both.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"

# Identical uvicorn settings on both sides, as gateway/process/runner.py and
# gateway/process/serve.py set them: uvloop, httptools (uvicorn's "auto" when installed),
# no access log, no Server header, one process.
UVICORN_LOOP = "uvloop"
UVICORN_HTTP = "httptools"

GATEWAY = "gateway"
BARE = "bare"


@dataclass(frozen=True)
class Sample:
    """One measured run against one target."""

    target: str
    run: int
    wrk: WrkResult
    cpu_s: float

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU time per completed request."""
        return self.cpu_s / self.wrk.requests * 1e6 if self.wrk.requests else float("nan")


@dataclass(frozen=True)
class Summary:
    """Medians across runs for one target."""

    target: str
    runs: int
    requests_per_s: float
    requests_per_s_min: float
    requests_per_s_max: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    errors: int


def summarize(target: str, samples: list[Sample]) -> Summary:
    """Median req/s, p50, p99 and CPU per request; errors are summed."""
    rps = [s.wrk.requests_per_s for s in samples]
    return Summary(
        target=target,
        runs=len(samples),
        requests_per_s=statistics.median(rps),
        requests_per_s_min=min(rps),
        requests_per_s_max=max(rps),
        p50_ms=statistics.median(s.wrk.p50_ms for s in samples),
        p99_ms=statistics.median(s.wrk.p99_ms for s in samples),
        cpu_us_per_request=statistics.median(s.cpu_us_per_request for s in samples),
        errors=sum(s.wrk.errors for s in samples),
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults are the documented benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="measured runs per target")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per target")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait")
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "health.json", help="JSON results file"
    )
    parser.add_argument(
        "--bare-vs-bare",
        action="store_true",
        help="A/A run: a second bare server instead of the gateway (noise floor)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def _uvicorn_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def bare_server(name: str, port: int, logs: Path) -> Server:
    """Bare Starlette on uvicorn with the gateway's uvicorn settings."""
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bare_app:app",
        "--app-dir",
        str(BENCH_DIR),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        UVICORN_LOOP,
        "--http",
        UVICORN_HTTP,
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
    ]
    return Server(
        name=name,
        argv=argv,
        env=_uvicorn_env(),
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/health",
        log_path=logs / f"{name}.log",
    )


def gateway_server(ports: list[int], logs: Path, data_dir: Path) -> Server:
    """The real gateway process (`python -m gateway serve`) on three free ports."""
    public, parcel, party = ports
    env = _uvicorn_env()
    env.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    env.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    env.update(
        GATEWAY_HOST="127.0.0.1",
        PUBLIC_PORT=str(public),
        PARCEL_INTERNAL_PORT=str(parcel),
        PARTY_INTERNAL_PORT=str(party),
        LOG_LEVEL="warning",
        DATA_DIR=str(data_dir),
    )
    return Server(
        name=GATEWAY,
        argv=[sys.executable, "-m", "gateway", "serve"],
        env=env,
        base_url=f"http://127.0.0.1:{public}",
        ready_path="/ready",
        log_path=logs / f"{GATEWAY}.log",
        cwd=REPO_DIR,
    )


def stop_and_record(server: Server, exit_codes: dict[str, int | None]) -> None:
    """Stop `server` with SIGTERM and remember how it exited."""
    exit_codes[server.name] = server.stop(grace_s=15.0)


def measure(server: Server, params: WrkParams, run: int) -> Sample:
    """One wrk run against the server's /health, with the server's CPU time around it."""
    cpu_before = server.cpu_seconds()
    result = wrk.run(params, server.base_url + "/health")
    cpu_after = server.cpu_seconds()
    return Sample(target=server.name, run=run, wrk=result, cpu_s=cpu_after - cpu_before)


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def print_table(summaries: list[Summary], ratio: float, ratio_label: str) -> None:
    """Medians per target, then the throughput ratio."""
    header = (
        f"{'target':<10} {'req/s':>10} {'(min-max)':>17} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'CPU us/req':>11} {'errors':>7}"
    )
    print(header)
    print("-" * len(header))
    for s in summaries:
        spread = f"{s.requests_per_s_min:.0f}-{s.requests_per_s_max:.0f}"
        print(
            f"{s.target:<10} {s.requests_per_s:>10.0f} {spread:>17} {s.p50_ms:>8.2f} "
            f"{s.p99_ms:>8.2f} {s.cpu_us_per_request:>11.1f} {s.errors:>7}"
        )
    print(f"\n{ratio_label} (req/s, medians): {ratio:.3f}")


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into the same unwinding as Ctrl-C, so the servers are stopped.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 on success, 1 on a failed run, 130 when interrupted."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    params = WrkParams(threads=args.threads, connections=args.connections, duration_s=args.duration)
    logs = RESULTS_DIR / "logs"
    subject = "bare-2" if args.bare_vs_bare else GATEWAY
    exit_codes: dict[str, int | None] = {}
    load_before = os.getloadavg()
    if load_before[0] > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: load average {load_before[0]:.2f} before start; other work on this "
            "machine will move the figures",
            file=sys.stderr,
        )

    try:
        wrk.require_wrk()
        with ExitStack() as stack:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gw-bench-")))
            ports = free_ports(4)
            if args.bare_vs_bare:
                first = bare_server(subject, ports[0], logs)
            else:
                first = gateway_server(ports[:3], logs, data_dir)
            second = bare_server(BARE, ports[3], logs)
            targets = [first, second]
            # Start both, then wait: the gateway's start-up overlaps the bare server's.
            for server in targets:
                stack.callback(stop_and_record, server, exit_codes)
                server.start()
            for server in targets:
                server.wait_ready(args.ready_timeout)
            print(
                f"wrk -t{params.threads} -c{params.connections} -d{params.duration_s:g}s "
                f"--latency; {args.runs} runs per target, warm-up {args.warmup:g}s",
                file=sys.stderr,
            )
            for server in targets:
                wrk.run(params, server.base_url + "/health", duration_s=args.warmup)

            samples: list[Sample] = []
            for run in range(args.runs):
                order = targets if run % 2 == 0 else targets[::-1]
                for server in order:
                    sample = measure(server, params, run)
                    samples.append(sample)
                    print(
                        f"run {run + 1}/{args.runs} {server.name:<8} "
                        f"{sample.wrk.requests_per_s:>9.0f} req/s  p50 {sample.wrk.p50_ms:.2f} ms  "
                        f"p99 {sample.wrk.p99_ms:.2f} ms  errors {sample.wrk.errors}",
                        file=sys.stderr,
                    )
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    except (ServerError, WrkError, subprocess.TimeoutExpired) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1

    summaries = [summarize(s.name, [x for x in samples if x.target == s.name]) for s in targets]
    by_name = {s.target: s for s in summaries}
    ratio = by_name[subject].requests_per_s / by_name[BARE].requests_per_s
    ratio_label = f"{subject} / {BARE}"
    print()
    print_table(summaries, ratio, ratio_label)

    clean_stop = exit_codes.get(GATEWAY) in (None, 0)
    if not clean_stop:
        print(
            f"warning: gateway exited {exit_codes[GATEWAY]} on SIGTERM (expected 0)",
            file=sys.stderr,
        )
    errors = sum(s.errors for s in summaries)
    if errors:
        print(f"warning: {errors} failed requests; figures are not comparable", file=sys.stderr)

    report = {
        "benchmark": "health",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "wrk": asdict(params) | {"warmup_s": args.warmup},
        "uvicorn": {
            "loop": UVICORN_LOOP,
            "http": UVICORN_HTTP,
            "workers": 1,
            "access_log": False,
            "server_header": False,
        },
        "mode": "bare-vs-bare" if args.bare_vs_bare else "gateway-vs-bare",
        "summary": [asdict(s) for s in summaries],
        "ratio_requests_per_s": {"label": ratio_label, "value": ratio},
        "exit_codes_on_sigterm": exit_codes,
        "samples": [
            asdict(s.wrk)
            | {"target": s.target, "run": s.run, "cpu_us_per_request": s.cpu_us_per_request}
            for s in samples
        ],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {args.output}", file=sys.stderr)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
