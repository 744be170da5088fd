"""Webhooks benchmark: deliveries/s and commit-to-receiver latency, healthy and with 20 % dead.

    .venv/bin/python bench/webhooks.py                 # bash scripts/bench.sh webhooks
    .venv/bin/python bench/webhooks.py --runs 1 --burst 1000 --paced-s 5   # quick look

Everything is real: a fresh PostgreSQL database and Redis key prefix, one gateway
process (`python -m gateway serve`, `WEBHOOK_ALLOW_PRIVATE_NETWORKS=true`, fresh for
each run) and the receiver in a process of its own (`bench/webhook_receiver.py`: raw
asyncio on uvloop answering 204, recording each `webhook-id` and its arrival time, and
verifying every 10th delivery's signature with `standardwebhooks`).

Load: `webhook.test` deliveries, `POST /v1/webhooks/{id}/test` on the gateway's public
port. Each request inserts one pending delivery (the outbox row the dispatcher claims,
the same path a job event's fan-out feeds), so the load is exactly "n deliveries",
with no worker or job machinery in the measurement. The latency of a delivery is its
arrival at the receiver minus the row's `created_at` (PostgreSQL `now()` of the
inserting transaction: an upper bound on commit-to-receiver, same machine clock).

Per run, `--endpoints` endpoints (one API key of a `bench` tier that allows them):
1. **backlog drain**: `--burst` test deliveries posted (32 concurrent requests,
   round-robin over the endpoints) to a *loader* gateway that does not deliver
   (WEBHOOK_DELIVERY=false), which then stops; the gateway under test starts and
   drains the backlog: deliveries/s = (n - 1) / (last arrival - first arrival), and
   its CPU per delivery, with no API load in the same process.
2. **healthy**: `--rate` deliveries/s for `--paced-s` seconds (paced, well inside the
   capacity): latency p50/p99.
3. **20 % dead**: `--endpoints / 4` more endpoints (so 20 % of all) that never answer
   (`--dead hang`, the receiver's hanging port: each attempt holds a send slot for
   WEBHOOK_TIMEOUT_S) or refuse connections (`--dead refused`); the same paced rate
   with 20 % of it to the dead endpoints; latency of the healthy deliveries.

Baseline, same run, same receiver: a plain httpx client loop (a new connection per
request, as the gateway's sender makes) with 64 concurrent requests for 3 s (requests/s),
and a single POST round trip (p50 over 200 sequential requests).

Table on stdout (medians across runs; latency percentiles over every delivery of every
run), the record in bench/results/webhooks.json, logs in bench/results/logs/. Exit code 1
when a delivery never arrived, a sampled signature failed to verify, or a gateway did not
exit 0 on SIGTERM.
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path[:0] = [str(REPO_DIR), str(BENCH_DIR)]

from profiling import start_py_spy, stop_py_spy  # noqa: E402
from servers import Server, free_ports  # noqa: E402
from streams import Bench, percentile  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
PHASE_TIMEOUT_S = 120.0


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--endpoints", type=int, default=20, help="healthy endpoints")
    parser.add_argument("--burst", type=int, default=3000, help="backlog of phase 1")
    parser.add_argument("--rate", type=float, default=100.0, help="paced deliveries/s")
    parser.add_argument("--paced-s", type=float, default=10.0, help="each paced phase")
    parser.add_argument("--dead", choices=("hang", "refused"), default="hang")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="WEBHOOK_TIMEOUT_S")
    parser.add_argument(
        "--dispatch-interval-s", type=float, default=None, help="WEBHOOK_DISPATCH_INTERVAL_S"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the gateway during run 1's drain (bench/results/webhooks_drain.pyspy.txt)",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    args = parser.parse_args()
    if min(args.runs, args.endpoints, args.burst) < 1 or args.rate <= 0:
        parser.error("--runs, --endpoints, --burst and --rate must be positive")
    return args


class WebhookBench(Bench):
    """The streams benchmark's database, prefix and credentials, webhook settings."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        args.per_job, args.idle_streams, args.heartbeat_s = 1, 1, 15.0
        super().__init__(args, work)
        self.database = self.database.replace("bench_streams_", "bench_webhooks_")
        self.database_url = self.database_url.replace("bench_streams_", "bench_webhooks_")
        self.prefix = f"benchwebhooks:{self.tag}:"
        tiers = json.loads(self.tiers.read_text())
        tiers["tiers"]["bench"].update(max_webhooks=10_000, webhook_events_per_s=100_000)
        self.tiers.write_text(json.dumps(tiers))
        self.loader = False

    def env(self, ports: Sequence[int]) -> dict[str, str]:
        """A gateway's environment, webhooks to loopback allowed."""
        env = super().env(ports)
        env.update(
            WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
            WEBHOOK_TIMEOUT_S=str(self.args.timeout_s),
            MAX_CONNECTIONS_PER_PORT="10000",
        )
        if self.loader:  # queues the backlog, never delivers any of it
            env["WEBHOOK_DELIVERY"] = "false"
        elif self.args.dispatch_interval_s is not None:
            env["WEBHOOK_DISPATCH_INTERVAL_S"] = str(self.args.dispatch_interval_s)
        return env


# -- the receiver -------------------------------------------------------------------------


def start_receiver() -> tuple[Server, int, int]:
    """The receiver process: (server, port, hanging port)."""
    port, hang = free_ports(2)
    server = Server(
        name="receiver",
        argv=[sys.executable, str(BENCH_DIR / "webhook_receiver.py"), str(port), str(hang)],
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        base_url=f"http://127.0.0.1:{port}",
        ready_path="/_report",
        log_path=RESULTS_DIR / "logs" / "webhooks_receiver.log",
    )
    server.start()
    server.wait_ready(30)
    return server, port, hang


def report(port: int) -> dict[str, Any]:
    """The receiver's record since the last report (and a fresh one)."""
    response = httpx.get(f"http://127.0.0.1:{port}/_report", timeout=60)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


async def baseline(port: int) -> dict[str, float]:
    """A plain httpx loop against the receiver: requests/s and one round trip."""
    url = f"http://127.0.0.1:{port}/baseline"
    body = b'{"type":"baseline"}'
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        done = 0
        deadline = time.monotonic() + 3.0

        async def loop() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                await client.post(url, content=body)
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(64)))
        rate = done / (time.monotonic() - started)
        trips = []
        for _ in range(200):
            t = time.perf_counter()
            await client.post(url, content=body)
            trips.append((time.perf_counter() - t) * 1000)
    return {"requests_per_s": rate, "round_trip_p50_ms": statistics.median(trips)}


# -- one run ------------------------------------------------------------------------------


async def create_endpoints(client: httpx.AsyncClient, urls: Sequence[str]) -> list[dict[str, Any]]:
    """One endpoint per URL: {id, secret, path}."""
    out = []
    for url in urls:
        response = await client.post("/v1/webhooks", json={"url": url, "events": ["job.completed"]})
        if response.status_code != 201:
            raise RuntimeError(f"POST /v1/webhooks: {response.status_code} {response.text[:300]}")
        body = response.json()
        out.append({"id": body["id"], "secret": body["secret"], "path": url.split("/", 3)[3]})
    return out


async def post_tests(client: httpx.AsyncClient, endpoint_ids: Sequence[str]) -> list[str]:
    """One test delivery per entry, 32 at a time; their delivery ids."""
    gate = asyncio.Semaphore(32)

    async def one(endpoint_id: str) -> str:
        async with gate:
            response = await client.post(f"/v1/webhooks/{endpoint_id}/test")
        if response.status_code != 202:
            raise RuntimeError(f"POST test: {response.status_code} {response.text[:300]}")
        delivery_id: str = response.json()["id"]
        return delivery_id

    return list(await asyncio.gather(*(one(e) for e in endpoint_ids)))


async def paced_tests(
    client: httpx.AsyncClient, endpoint_ids: Sequence[str], rate: float
) -> list[str]:
    """One test delivery per entry, started at `rate` per second; their delivery ids."""
    started = time.monotonic()
    tasks = []
    for i, endpoint_id in enumerate(endpoint_ids):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the load, not waiting for a result
        tasks.append(asyncio.create_task(post_tests(client, [endpoint_id])))
    return [ids[0] for ids in await asyncio.gather(*tasks)]


async def created_at(database_url: str, ids: Sequence[str]) -> dict[str, float]:
    """Each delivery's `created_at` as Unix seconds."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, extract(epoch FROM created_at)::float8 AS at"
            " FROM webhook_deliveries WHERE id = ANY($1::text[])",
            list(ids),
        )
    finally:
        await conn.close()
    return {row["id"]: row["at"] for row in rows}


async def failed_attempts(database_url: str, ids: Sequence[str]) -> dict[str, int]:
    """Failed attempts of these deliveries by reason (status or error): a healthy
    receiver should have none; a missing delivery with some is waiting for its retry."""
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT coalesce(error, 'status ' || status::text) AS why, count(*) AS n"
            " FROM webhook_attempts WHERE delivery_id = ANY($1::text[])"
            " AND (error IS NOT NULL OR status NOT BETWEEN 200 AND 299) GROUP BY 1",
            list(ids),
        )
    finally:
        await conn.close()
    return {row["why"]: int(row["n"]) for row in rows}


def wait_arrivals(port: int, ids: Sequence[str], timeout_s: float) -> dict[str, float]:
    """Poll the receiver until every delivery in `ids` arrived (first arrival each)."""
    wanted = set(ids)
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        for message_id, at in report(port)["arrivals"]:
            if message_id in wanted:
                seen.setdefault(message_id, at)
        if len(seen) >= len(wanted) or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


def latencies(arrived: dict[str, float], created: dict[str, float]) -> list[float]:
    """Arrival - created_at in ms per delivery that arrived, in the order they were created
    (the record keeps the series, so a stall shows where it happened)."""
    pairs = sorted((created[i], at) for i, at in arrived.items() if i in created)
    return [(at - made) * 1000 for made, at in pairs]


def one_run(bench: WebhookBench, port: int, hang: int, run: int) -> dict[str, Any]:
    """Backlog drain, healthy and 20 % dead phases (see the module)."""
    args = bench.args
    out: dict[str, Any] = {}

    # 1. backlog: queued on a loader gateway that does not deliver
    bench.loader = True
    loader, public, _ = bench.start_gateway(f"loader{run}")
    bench.loader = False
    try:
        if not bench.key:
            bench.credentials()
        headers = {"X-API-Key": bench.key}

        async def load() -> tuple[list[dict[str, Any]], list[str], float]:
            async with httpx.AsyncClient(base_url=public, headers=headers, timeout=60) as client:
                healthy = await create_endpoints(
                    client,
                    [f"http://127.0.0.1:{port}/ep/r{run}n{i}" for i in range(args.endpoints)],
                )
                ids = [e["id"] for e in healthy]
                t0 = time.monotonic()
                burst = await post_tests(client, [ids[i % len(ids)] for i in range(args.burst)])
                return healthy, burst, len(burst) / (time.monotonic() - t0)

        print(f"  run {run}: queueing {args.burst}", file=sys.stderr, flush=True)
        healthy, burst, posts_per_s = asyncio.run(load())
    finally:
        bench.stop_gateway(loader)
    httpx.post(
        f"http://127.0.0.1:{port}/_secrets",
        content=json.dumps({"/" + e["path"]: e["secret"] for e in healthy}),
    )
    report(port)
    ids = [e["id"] for e in healthy]

    print(f"  run {run}: draining", file=sys.stderr, flush=True)
    server, public, _ = bench.start_gateway(f"webhooks{run}")
    spy = None
    if args.profile and run == 1:
        spy = start_py_spy(server.pid, RESULTS_DIR / "webhooks_drain.pyspy.txt")
    try:
        cpu0 = server.cpu_seconds()
        arrived = wait_arrivals(port, burst, PHASE_TIMEOUT_S)
        cpu = server.cpu_seconds() - cpu0
        if spy is not None:
            stop_py_spy(spy)
        span = max(arrived.values()) - min(arrived.values())
        out["drain"] = {
            "deliveries": len(burst),
            "arrived": len(arrived),
            "deliveries_per_s": (len(arrived) - 1) / span if span > 0 else float("nan"),
            "posts_per_s": posts_per_s,
            "gateway_cpu_ms_per_delivery": 1000 * cpu / max(1, len(arrived)),
            "failed_attempts": asyncio.run(failed_attempts(bench.database_url, burst)),
        }

        async def paced_phases() -> None:
            async with httpx.AsyncClient(base_url=public, headers=headers, timeout=60) as client:
                # 2. healthy, paced
                n = int(args.rate * args.paced_s)
                print(f"  run {run}: healthy, {n} at {args.rate:g}/s", file=sys.stderr, flush=True)
                cpu0, t0 = server.cpu_seconds(), time.monotonic()
                paced = await paced_tests(client, [ids[i % len(ids)] for i in range(n)], args.rate)
                arrived = await asyncio.to_thread(wait_arrivals, port, paced, PHASE_TIMEOUT_S)
                created = await created_at(bench.database_url, paced)
                out["healthy"] = {
                    "deliveries": n,
                    "arrived": len(arrived),
                    "failed_attempts": await failed_attempts(bench.database_url, paced),
                    "gateway_cpu_share": (server.cpu_seconds() - cpu0) / (time.monotonic() - t0),
                    "latency_ms": latencies(arrived, created),
                }

                # 3. 20 % dead
                dead_port = hang if args.dead == "hang" else free_ports(1)[0]
                dead = await create_endpoints(
                    client,
                    [
                        f"http://127.0.0.1:{dead_port}/ep/d{run}n{i}"
                        for i in range(max(1, args.endpoints // 4))
                    ],
                )
                dead_ids = [e["id"] for e in dead]
                print(f"  run {run}: {len(dead)} dead ({args.dead})", file=sys.stderr, flush=True)
                targets = [
                    dead_ids[(i // 5) % len(dead_ids)] if i % 5 == 4 else ids[i % len(ids)]
                    for i in range(n)
                ]
                cpu0, t0 = server.cpu_seconds(), time.monotonic()
                mixed = await paced_tests(client, targets, args.rate)
                alive = [d for d, t in zip(mixed, targets, strict=True) if t not in dead_ids]
                arrived = await asyncio.to_thread(wait_arrivals, port, alive, PHASE_TIMEOUT_S)
                created = await created_at(bench.database_url, alive)
                out["dead20"] = {
                    "deliveries": len(alive),
                    "arrived": len(arrived),
                    "failed_attempts": await failed_attempts(bench.database_url, alive),
                    "gateway_cpu_share": (server.cpu_seconds() - cpu0) / (time.monotonic() - t0),
                    "latency_ms": latencies(arrived, created),
                }
                for endpoint_id in dead_ids:  # their retries must not reach the next run
                    await client.delete(f"/v1/webhooks/{endpoint_id}")

        asyncio.run(paced_phases())
        v = report(port)  # counts since the receiver started
        out["verified"], out["bad_signatures"] = v["verified"], v["bad_signatures"]
        return out
    finally:
        bench.stop_gateway(server)


# -- the table ----------------------------------------------------------------------------


def summarize(runs: Sequence[dict[str, Any]], base: Sequence[dict[str, float]]) -> dict[str, Any]:
    """Medians across runs, percentiles over every delivery."""

    def pooled(phase: str) -> list[float]:
        return [x for r in runs for x in r[phase]["latency_ms"]]

    rate = statistics.median(r["drain"]["deliveries_per_s"] for r in runs)
    base_rate = statistics.median(b["requests_per_s"] for b in base)
    healthy, dead = pooled("healthy"), pooled("dead20")
    failed: dict[str, int] = {}
    for r in runs:
        for phase in ("drain", "healthy", "dead20"):
            for why, n in r[phase].get("failed_attempts", {}).items():
                failed[why] = failed.get(why, 0) + n
    return {
        "deliveries_per_s": rate,
        "deliveries_per_s_runs": [r["drain"]["deliveries_per_s"] for r in runs],
        "posts_per_s": statistics.median(r["drain"]["posts_per_s"] for r in runs),
        "cpu_ms_per_delivery": statistics.median(
            r["drain"]["gateway_cpu_ms_per_delivery"] for r in runs
        ),
        "baseline_requests_per_s": base_rate,
        "baseline_round_trip_p50_ms": statistics.median(b["round_trip_p50_ms"] for b in base),
        "ratio": rate / base_rate,
        "healthy_p50_ms": percentile(healthy, 0.5),
        "healthy_p99_ms": percentile(healthy, 0.99),
        "dead20_p50_ms": percentile(dead, 0.5),
        "dead20_p99_ms": percentile(dead, 0.99),
        "missing": sum(
            r[p]["deliveries"] - r[p]["arrived"]
            for r in runs
            for p in ("drain", "healthy", "dead20")
        ),
        "verified": runs[-1]["verified"],
        "bad_signatures": runs[-1]["bad_signatures"],
        "failed_attempts": failed,
    }


def print_table(s: dict[str, Any], args: argparse.Namespace) -> None:
    """The summary table."""
    spread = ", ".join(f"{x:,.0f}" for x in s["deliveries_per_s_runs"])
    rows = [
        ("deliveries/s (backlog drain)", f"{s['deliveries_per_s']:,.0f}  (runs: {spread})"),
        ("  gateway CPU per delivery", f"{s['cpu_ms_per_delivery']:.2f} ms"),
        ("  test POSTs/s (queueing it)", f"{s['posts_per_s']:,.0f}"),
        ("baseline: httpx loop req/s", f"{s['baseline_requests_per_s']:,.0f}"),
        ("baseline: one POST round trip", f"{s['baseline_round_trip_p50_ms']:.2f} ms"),
        ("ratio deliveries / baseline", f"{s['ratio']:.2f}"),
        (
            f"healthy {args.rate:g}/s p50 / p99",
            f"{s['healthy_p50_ms']:.0f} / {s['healthy_p99_ms']:.0f} ms",
        ),
        (
            f"20% dead ({args.dead}) healthy p50 / p99",
            f"{s['dead20_p50_ms']:.0f} / {s['dead20_p99_ms']:.0f} ms",
        ),
        ("missing deliveries", str(s["missing"])),
        (
            "failed attempts to healthy endpoints",
            ", ".join(f"{n} {why}" for why, n in sorted(s["failed_attempts"].items())) or "0",
        ),
        ("signatures verified / bad", f"{s['verified']} / {s['bad_signatures']}"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> int:
    """Run the benchmark; 0 when every delivery arrived and verified."""
    args = parse_args()
    RESULTS_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        bench = WebhookBench(args, Path(tmp))
        asyncio.run(bench.create_db())
        receiver, port, hang = start_receiver()
        runs: list[dict[str, Any]] = []
        base: list[dict[str, float]] = []
        try:
            for run in range(1, args.runs + 1):
                base.append(asyncio.run(baseline(port)))
                report(port)
                runs.append(one_run(bench, port, hang, run))
            receiver_cpu = receiver.cpu_seconds()
        finally:
            receiver.stop(grace_s=5)
            asyncio.run(bench.cleanup())
    summary = summarize(runs, base)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True
    ).stdout.strip()
    record = {
        "args": {k: v for k, v in vars(args).items() if "url" not in k},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load": os.getloadavg(),
        },
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "summary": summary,
        "receiver_cpu_s": receiver_cpu,
        "gateway_exit_codes": bench.exit_codes,
        "runs": [  # with each paced phase's latency series, in creation order
            {
                k: (
                    {
                        kk: [round(x, 1) for x in vv] if kk == "latency_ms" else vv
                        for kk, vv in v.items()
                    }
                    if isinstance(v, dict)
                    else v
                )
                for k, v in r.items()
            }
            for r in runs
        ],
    }
    (RESULTS_DIR / "webhooks.json").write_text(json.dumps(record, indent=2))
    print(f"webhooks benchmark, commit {commit}, {record['date']}, load {os.getloadavg()[0]:.2f}")
    print_table(summary, args)
    failed = summary["missing"] or summary["bad_signatures"] or not summary["verified"]
    failed = failed or any(code != 0 for code in bench.exit_codes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
