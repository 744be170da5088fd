"""Public-plane benchmark: a cache-hit `GET /v1/properties/{id}` with every check on.

    .venv/bin/python bench/public_plane.py [--runs 5] [--duration 10] [--rate 200]

One command starts, on free loopback ports:

* a local upstream (`bench/upstream_app.py` on uvicorn) standing in for the parser
  service (`PARSER_SERVICE_URL` points at it);
* the real Firebase Auth emulator (firebase-tools, installed into `.cache/` by
  `scripts/ensure_firebase_emulator.sh`; skipped with a note when npm is missing);
* the real gateway (`python -m gateway serve`) on real Redis and PostgreSQL (a fresh
  database created for the run and dropped after), with a tier whose limits are never
  reached but are still checked and counted on every request (auth, token bucket,
  daily quota, cache lookup);
* the bare Starlette baseline (`bench/bare_app.py`, `GET /health`).

Then, all in the same run:

1. single flight: 100 concurrent misses for one new id; prints the upstream calls (1);
2. saturation: `wrk -t2 -c64` against the gateway with an API key, the gateway with a
   Firebase ID token, the bare baseline and the upstream directly, in ABBA order over
   `--runs` rounds; medians of requests/s, p50 and p99;
3. fixed moderate rate: `--rate` requests/s, evenly spaced and open loop
   (`bench/paced.py`), against the upstream directly and through the gateway (API key);
   the p99 the gateway adds is the difference of the medians.

`--profile` adds one more saturation run of each gateway target with py-spy attached to
the gateway (collapsed stacks in bench/results/public_plane_gateway.pyspy.txt for the API
key, public_plane_gateway_firebase.pyspy.txt for the Firebase token).

Results: a table on stdout, JSON in bench/results/public_plane.json, logs in
bench/results/logs/. Every server is stopped with SIGTERM at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import wrk
from paced import PacedResult, paced
from profiling import start_py_spy, stop_py_spy
from redis import Redis
from servers import Server, ServerError, free_ports
from sqlalchemy.engine import make_url
from wrk import WrkError, WrkResult

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
PROFILE_FILES = ("public_plane_gateway.pyspy.txt", "public_plane_gateway_firebase.pyspy.txt")
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
PARCEL = "BENCH-0001"
PROJECT = "demo-gateway"

GW_KEY = "gateway (API key)"
GW_FIREBASE = "gateway (Firebase token)"
BARE = "bare Starlette /health"
UPSTREAM = "upstream direct"
GW_HEALTH = "gateway /health (no plane)"


@dataclass(frozen=True)
class Target:
    """One thing to load: a URL and its request headers."""

    name: str
    url: str
    headers: dict[str, str]
    server: Server


@dataclass(frozen=True)
class Measured:
    """One saturation run, the CPU its server used and its limiter round trips."""

    wrk: WrkResult
    cpu_s: float
    system_s: float
    limiter_calls: float = 0.0
    limiter_batches: float = 0.0
    gc_pause_s: float = float("nan")  # gateway only: time it stood still in GC


@dataclass(frozen=True)
class Summary:
    """Medians across runs for one target."""

    name: str
    runs: int
    rps: float
    rps_min: float
    rps_max: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: float = float("nan")
    server_busy: float = float("nan")  # share of one core the server used
    kernel_share: float = float("nan")  # of that CPU, the part spent in the kernel
    batch: float = float("nan")  # mean limiter checks per Redis round trip
    gc_share: float = float("nan")  # of the run's wall time, the gateway's GC pauses


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured rounds (median)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rate", type=int, default=200, help="paced requests/s")
    parser.add_argument("--paced-connections", type=int, default=8)
    parser.add_argument("--no-firebase", action="store_true", help="skip the emulator run")
    parser.add_argument("--profile", action="store_true", help="py-spy one extra gateway run")
    return parser.parse_args(argv)


def _wrk(target: Target, args: list[str], duration_s: float) -> WrkResult:
    argv = ["wrk", *args, f"-d{duration_s:g}s", "--timeout=5s", "--latency"]
    for name, value in target.headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(target.url)
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    if done.returncode != 0:
        raise WrkError(f"wrk exited {done.returncode}:\n{done.stderr}")
    return wrk.parse(done.stdout)


_COUNTERS = (
    "gateway_limiter_calls_total",
    "gateway_limiter_batches_total",
    "gateway_gc_pause_seconds_sum",
)


def _gateway_counts(base_url: str) -> tuple[float, float, float]:
    """The gateway's limiter checks, Redis round trips and GC pause seconds so far."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    found = dict.fromkeys(_COUNTERS, 0.0)
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in found:  # summed over labels (GC: over generations)
            found[name] += float(line.rsplit(" ", 1)[1])
    calls, batches, gc_s = (found[name] for name in _COUNTERS)
    return calls, batches, gc_s


def _measure(target: Target, load: list[str], duration_s: float) -> Measured:
    gateway = target.server.name == "gateway"
    calls, trips, gc_s = _gateway_counts(target.server.base_url) if gateway else (0.0, 0.0, 0.0)
    user, system = target.server.cpu_times()
    result = _wrk(target, load, duration_s)
    user_after, system_after = target.server.cpu_times()
    cpu, kernel = user_after - user + system_after - system, system_after - system
    if not gateway:
        return Measured(result, cpu, kernel)
    calls_after, trips_after, gc_after = _gateway_counts(target.server.base_url)
    return Measured(result, cpu, kernel, calls_after - calls, trips_after - trips, gc_after - gc_s)


def _summarize_paced(name: str, results: Sequence[WrkResult | PacedResult]) -> Summary:
    """Medians of requests/s and latency (wrk and paced runs report the same fields)."""
    rps = [r.requests_per_s for r in results]
    return Summary(
        name=name,
        runs=len(results),
        rps=statistics.median(rps),
        rps_min=min(rps),
        rps_max=max(rps),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
    )


def _summarize(name: str, measured: list[Measured]) -> Summary:
    """`_summarize_paced` of the wrk runs, plus the server's CPU and limiter batching."""
    return replace(
        _summarize_paced(name, [m.wrk for m in measured]),
        cpu_us_per_request=statistics.median(
            m.cpu_s / m.wrk.requests * 1e6 for m in measured if m.wrk.requests
        ),
        server_busy=statistics.median(m.cpu_s / m.wrk.elapsed_s for m in measured),
        kernel_share=statistics.median(m.system_s / m.cpu_s for m in measured if m.cpu_s),
        batch=statistics.median(
            (m.limiter_calls / m.limiter_batches if m.limiter_batches else float("nan"))
            for m in measured
        ),
        gc_share=statistics.median(m.gc_pause_s / m.wrk.elapsed_s for m in measured),
    )


def _uvicorn(name: str, module: str, port: int, logs: Path, ready: str) -> Server:
    argv = [
        sys.executable, "-m", "uvicorn", module, "--app-dir", str(BENCH_DIR),
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--no-server-header", "--log-level", "warning",
    ]  # fmt: skip
    return Server(
        name=name,
        argv=argv,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        base_url=f"http://127.0.0.1:{port}",
        ready_path=ready,
        log_path=logs / f"{name.split()[0]}.log",
    )


def _admin_dsn(url: str, database: str = "postgres") -> str:
    return (
        make_url(url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(_admin_dsn(url), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _start_emulator(workdir: Path, logs: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    script = REPO_DIR / "scripts" / "ensure_firebase_emulator.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"firebase emulator unavailable: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    port, hub, log_port = free_ports(3)
    (workdir / "firebase.json").write_text(
        json.dumps(
            {
                "emulators": {
                    "auth": {"host": "127.0.0.1", "port": port},
                    "hub": {"host": "127.0.0.1", "port": hub},
                    "logging": {"host": "127.0.0.1", "port": log_port},
                    "ui": {"enabled": False},
                }
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "FIREBASE_AUTH_EMULATOR_HOST"}
    out = (logs / "firebase.log").open("wb")
    proc = subprocess.Popen(
        [done.stdout.strip().splitlines()[-1], "emulators:start", "--only", "auth",
         "--project", PROJECT, "--config", str(workdir / "firebase.json")],
        cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"firebase emulator exited {proc.returncode}; see firebase.log")
        try:
            if httpx.get(f"http://{host}/", timeout=1).status_code == 200:
                return proc, host
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise ServerError("firebase emulator did not start within 90 s")


def _id_token(host: str) -> str:
    response = httpx.post(
        f"http://{host}/identitytoolkit.googleapis.com/v1/accounts:signUp?key=fake",
        json={
            "email": f"bench-{uuid.uuid4().hex[:8]}@example.com",
            "password": "bench-only-password",
            "returnSecureToken": True,
        },
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["idToken"])


async def _single_flight(gateway: str, upstream: str, key: str) -> tuple[int, int]:
    parcel = f"slow-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as c:
        before = (await c.get(upstream + "/_count")).json()["count"]
        responses = await asyncio.gather(
            *(
                c.get(f"{gateway}/v1/properties/{parcel}", headers={"X-API-Key": key})
                for _ in range(100)
            )
        )
        after = (await c.get(upstream + "/_count")).json()["count"]
    ok = sum(r.status_code == 200 for r in responses)
    return after - before, ok


def _check_hit(target: Target) -> None:
    first = httpx.get(target.url, headers=target.headers, timeout=10)
    second = httpx.get(target.url, headers=target.headers, timeout=10)
    if second.status_code != 200 or second.headers.get("x-cache") != "HIT":
        raise ServerError(
            f"{target.name}: expected a 200 cache HIT, got {second.status_code} "
            f"{second.headers.get('x-cache')} {second.text[:200]} (first {first.status_code})"
        )
    if "ratelimit" not in second.headers:
        raise ServerError(f"{target.name}: no RateLimit header, limiter not in the path")


def _gateway(ports: list[int], logs: Path, env: dict[str, str]) -> Server:
    public, parcel, party = ports
    return Server(
        name="gateway",
        argv=[sys.executable, "-m", "gateway", "serve"],
        env={
            **os.environ,
            **env,
            "PYTHONUNBUFFERED": "1",
            "GATEWAY_HOST": "127.0.0.1",
            "PUBLIC_PORT": str(public),
            "PARCEL_INTERNAL_PORT": str(parcel),
            "PARTY_INTERNAL_PORT": str(party),
        },
        base_url=f"http://127.0.0.1:{public}",
        ready_path="/ready",
        log_path=logs / "gateway.log",
        cwd=REPO_DIR,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk.require_wrk()
    logs = RESULTS_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    base_db = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    db_name = f"bench_public_{uuid.uuid4().hex[:8]}"
    database_url = make_url(base_db).set(database=db_name).render_as_string(hide_password=False)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    asyncio.run(_admin(base_db, f'CREATE DATABASE "{db_name}"'))
    exit_codes: dict[str, int | None] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        stack.callback(
            lambda: asyncio.run(
                _admin(base_db, f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            )
        )
        stack.callback(lambda: _delete_prefix(redis_url, prefix))
        tiers = work / "tiers.json"
        tiers.write_text(
            json.dumps(
                {
                    "tiers": {
                        "free": {
                            "rate_per_s": 2,
                            "burst": 20,
                            "daily_quota": 2000,
                            "max_page_size": 25,
                        },
                        # Never reached, always checked: the token bucket and the daily quota
                        # run (and count) on every request.
                        "bench": {
                            "rate_per_s": 100000,
                            "burst": 1000000,
                            "daily_quota": 10**12,
                            "max_page_size": 25,
                        },
                    }
                }
            )
        )
        up_port, bare_port, *gw_ports = free_ports(5)
        upstream = _uvicorn(UPSTREAM, "upstream_app:app", up_port, logs, "/health")
        bare = _uvicorn(BARE, "bare_app:app", bare_port, logs, "/health")
        emulator = None if args.no_firebase else _start_emulator(work, logs)
        if emulator is not None:
            proc = emulator[0]
            stack.callback(lambda: (proc.terminate(), proc.wait(timeout=20)))
        env = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "REDIS_KEY_PREFIX": prefix,
            "ENVIRONMENT": "test",
            "LOG_LEVEL": "warning",
            "TIERS_FILE": str(tiers),
            "DEFAULT_TIER": "bench",
            "PARSER_SERVICE_URL": upstream.base_url,
            "FIREBASE_PROJECT_ID": PROJECT,
        }
        if emulator is not None:
            env["FIREBASE_AUTH_EMULATOR_HOST"] = emulator[1]
        gateway = _gateway(gw_ports, logs, env)
        for server in (upstream, bare, gateway):
            server.start()
            stack.callback(lambda s=server: exit_codes.__setitem__(s.name, s.stop(grace_s=15)))
        for server in (upstream, bare, gateway):
            server.wait_ready(60)

        created = subprocess.run(
            [sys.executable, "-m", "gateway", "keys", "create", "--name", "b", "--tier", "bench"],
            env={**os.environ, **env}, capture_output=True, text=True, check=True, cwd=REPO_DIR,
        )  # fmt: skip
        key = created.stdout.strip().splitlines()[-1]
        url = f"{gateway.base_url}/v1/properties/{PARCEL}"
        targets = [Target(GW_KEY, url, {"X-API-Key": key}, gateway)]
        if emulator is not None:
            token = _id_token(emulator[1])
            bearer = {"Authorization": f"Bearer {token}"}
            targets.append(Target(GW_FIREBASE, url, bearer, gateway))
        checked = list(targets)
        targets += [
            Target(GW_HEALTH, f"{gateway.base_url}/health", {}, gateway),
            Target(BARE, f"{bare.base_url}/health", {}, bare),
            Target(UPSTREAM, f"{upstream.base_url}/v1/properties/{PARCEL}", {}, upstream),
        ]
        for target in checked:
            _check_hit(target)

        sf_calls, sf_ok = asyncio.run(_single_flight(gateway.base_url, upstream.base_url, key))
        print(
            f"single flight: 100 concurrent misses -> {sf_calls} upstream call(s), {sf_ok} x 200",
            file=sys.stderr,
        )

        load = [f"-t{args.threads}", f"-c{args.connections}"]
        for target in targets:  # warm-up
            _wrk(target, load, 3)
        results: dict[str, list[Measured]] = {t.name: [] for t in targets}
        for run in range(args.runs):
            order = targets if run % 2 == 0 else list(reversed(targets))
            for target in order:
                measured = _measure(target, load, args.duration)
                results[target.name].append(measured)
                print(
                    f"run {run + 1}/{args.runs} {target.name}: "
                    f"{measured.wrk.requests_per_s:,.0f} req/s",
                    file=sys.stderr,
                )

        paced_targets = [targets[0], targets[-1]]
        paced_results: dict[str, list[PacedResult]] = {t.name: [] for t in paced_targets}
        for run in range(args.runs):
            for target in paced_targets if run % 2 == 0 else list(reversed(paced_targets)):
                paced_results[target.name].append(
                    paced(
                        target.url,
                        target.headers,
                        rate=args.rate,
                        duration_s=args.duration,
                        connections=args.paced_connections,
                    )
                )

        if args.profile:
            for target, out in zip(checked, PROFILE_FILES, strict=False):
                profiler = start_py_spy(gateway.pid, RESULTS_DIR / out)
                try:
                    _wrk(target, load, args.duration)
                finally:
                    stop_py_spy(profiler)

    summaries = [_summarize(name, rs) for name, rs in results.items()]
    paced_summaries = [_summarize_paced(name, rs) for name, rs in paced_results.items()]
    by_name = {s.name: s for s in summaries}
    bare = by_name[BARE]
    # Per gateway target: (by requests/s, by CPU per request) over the bare baseline.
    ratios = {
        name: (
            by_name[name].rps / bare.rps,
            bare.cpu_us_per_request / by_name[name].cpu_us_per_request,
        )
        for name in (GW_KEY, GW_FIREBASE)
        if name in by_name
    }
    ratio = ratios[GW_KEY][0]
    plane_share = by_name[GW_KEY].rps / by_name[GW_HEALTH].rps
    gw_paced, up_paced = paced_summaries
    added_p99 = gw_paced.p99_ms - up_paced.p99_ms
    added_p50 = gw_paced.p50_ms - up_paced.p50_ms
    _print(args, summaries, paced_summaries, ratios, added_p50, added_p99, sf_calls)
    print(f"gateway (API key) / gateway /health: {plane_share:.2f}  (cost of the plane itself)")
    record = {
        "when": datetime.now(UTC).isoformat(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load": os.getloadavg(),
        },
        "params": vars(args),
        "saturation": [asdict(s) for s in summaries],
        "paced": [asdict(s) for s in paced_summaries],
        "ratio_gateway_over_bare": ratio,
        "ratios_over_bare_rps_cpu": ratios,
        "ratio_gateway_over_gateway_health": plane_share,
        "added_p50_ms": added_p50,
        "added_p99_ms": added_p99,
        "single_flight_upstream_calls": sf_calls,
        "exit_codes": exit_codes,
    }
    (RESULTS_DIR / "public_plane.json").write_text(json.dumps(record, indent=2))
    failed = sum(s.errors for s in summaries + paced_summaries) or sf_calls != 1
    # uvicorn's own CLI re-raises SIGTERM (exit -15); the gateway must exit 0.
    clean = exit_codes.get("gateway") == 0 and all(
        code in (0, -15, None) for code in exit_codes.values()
    )
    return 1 if failed or not clean else 0


def _delete_prefix(redis_url: str, prefix: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 500):
            client.unlink(*keys[i : i + 500])
    finally:
        client.close()


def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _row(s: Summary, spread: str = "") -> str:
    cpu = "" if s.cpu_us_per_request != s.cpu_us_per_request else f"{s.cpu_us_per_request:.0f}"
    busy = "" if s.server_busy != s.server_busy else f"{100 * s.server_busy:.0f}%"
    batch = "" if s.batch != s.batch else f"{s.batch:.1f}"
    kernel = "" if s.kernel_share != s.kernel_share else f"{100 * s.kernel_share:.0f}%"
    gc = "" if s.gc_share != s.gc_share else f"{100 * s.gc_share:.1f}%"
    return (
        f"{s.name:<28} {s.rps:>10,.0f} {spread:>17} {s.p50_ms:>8.2f} {s.p99_ms:>8.2f}"
        f" {cpu:>8} {kernel:>6} {busy:>6} {batch:>6} {gc:>6} {s.errors:>7}"
    )


def _print(
    args: argparse.Namespace,
    summaries: list[Summary],
    paced: list[Summary],
    ratios: dict[str, tuple[float, float]],
    added_p50: float,
    added_p99: float,
    sf_calls: int,
) -> None:
    load = f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s"
    print(f"\nSaturation: {load}, median of {args.runs}")
    header = ("target", "req/s", "(min-max)", "p50 ms", "p99 ms", "CPU µs", "kernel", "busy")
    print(
        "{:<28} {:>10} {:>17} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>7}".format(
            *header, "batch", "gc", "errors"
        )
    )
    for s in summaries:
        print(_row(s, f"{s.rps_min:,.0f}-{s.rps_max:,.0f}"))
    conns = args.paced_connections
    print(
        f"\nFixed rate: {args.rate} req/s evenly spaced, open loop, up to {conns} keep-alive"
        f" connections, median of {args.runs}"
    )
    for s in paced:
        print(_row(s))
    print()
    for name, (by_rps, by_cpu) in ratios.items():
        print(f"ratio {name} / bare: {by_rps:.2f} by req/s, {by_cpu:.2f} by CPU  (target >= 0.5)")
    print(
        f"p99 added by the gateway at {args.rate} req/s: {added_p99:.2f} ms  (target < 5 ms;"
        f" p50 {added_p50:+.2f} ms)"
    )
    print(f"single flight: 100 concurrent misses -> {sf_calls} upstream call(s)  (target 1)")
    loadavg = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at the end: {loadavg} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    sys.exit(main())
