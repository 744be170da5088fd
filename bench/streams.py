"""Live-streams benchmark: idle SSE fan-out (memory, CPU) and commit-to-client latency.

    .venv/bin/python bench/streams.py                  # bash scripts/bench.sh streams
    .venv/bin/python bench/streams.py --idle-streams 2000 --idle-s 30 --runs 1   # quick look

Everything is real: a fresh PostgreSQL database and Redis key prefix, the gateway
(`python -m gateway serve`) as a subprocess, and the clients in two processes of their
own (`bench/stream_clients.py`: raw asyncio protocols on uvloop, far lighter than an
HTTP library, so they are not the bottleneck; their CPU is reported). The gateway gets
`SSE_MAX_PER_PRINCIPAL` and `MAX_CONNECTIONS_PER_PORT` raised, a higher open-file limit
(this process raises its own, the children inherit it) and one API key of a `bench` tier
whose limits are never reached.

1. **Idle fan-out** (one gateway process, fresh for each idle run): `--idle-jobs` queued
   jobs (on a platform no worker leases, so they stay idle) x `--per-job` streams each.
   After a warm-up (a few hundred streams and plain connections opened and closed),
   the gateway's VmRSS with nothing open; then `--idle-streams` plain keep-alive
   connections that sent `GET /health` (the baseline; uvicorn closes a connection idle
   for 5 s, so each repeats its request every ~4 s to stay open); then, with those still
   open, the same number of SSE streams. Per connection: (RSS with the plain ones -
   RSS before) / N and (RSS with both - RSS with the plain ones) / N, so neither reuses
   memory the other freed. Then the plain connections close and the gateway's CPU is
   read over `--idle-s` seconds with only the streams open (heartbeats every
   `SSE_HEARTBEAT_S`, the lease refresh, the hub's blocking XREAD); baseline: the same
   process's CPU over `--idle-base-s` seconds after every stream closed (its upkeep loops).
2. **Commit-to-client latency**: `--jobs` jobs of `--items` parcels, `--per-job`
   streams each (1,000 clients by default), then `--workers` workers (the repository's
   `taxlien_worker`, fake scrape) lease and post results on the parcel port until every
   stream got its job's terminal event. Per event received: client receive time -
   the event's `at` (PostgreSQL `now()` of the committing transaction, so an upper
   bound: it includes the rest of that transaction and its commit). Two layouts,
   alternating order across runs: **one process** (clients and workers on gateway A)
   and **two replicas** (clients on gateway B, workers on A, sharing Redis and
   PostgreSQL). Each event is also matched with its feed entry, whose id is the Redis
   time of the publish that follows the commit, to split the latency into "commit and
   publish" and "publish to client" (the streams' own part). Baseline, in the same
   phase and client process: the round trip of `GET /v1/jobs/{id}` to the gateway the
   clients use, one every 20 ms on one keep-alive connection.

Table on stdout (medians across runs; latency percentiles over every event of every
run), the record in bench/results/streams.json, logs in bench/results/logs/. Exit code 1
when a stream was refused, a client missed its terminal event, or a gateway did not exit
0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path[:0] = [str(REPO_DIR), str(BENCH_DIR)]

from jobs import scrape  # noqa: E402  (the fake scrape of the jobs benchmark)
from profiling import start_py_spy, stop_py_spy  # noqa: E402
from servers import Server, free_ports  # noqa: E402
from stream_clients import ClientProcess, raise_nofile  # noqa: E402

from taxlien_worker import Worker, WorkerClient  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
PLATFORMS = ("alpha", "beta", "gamma", "delta")
IDLE_PLATFORM = "idle"  # no worker leases it: jobs on it stay queued
NOFILE = 65536
PHASE_TIMEOUT_S = 180.0
PLAIN_REFRESH_S = 4.0  # under uvicorn's 5 s keep-alive timeout


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="latency runs (each: both layouts)")
    parser.add_argument("--idle-runs", type=int, default=1, help="idle fan-out runs")
    parser.add_argument("--idle-streams", type=int, default=5000, help="N of part 1")
    parser.add_argument("--idle-s", type=float, default=60.0, help="idle CPU window")
    parser.add_argument(
        "--idle-base-s", type=float, default=20.0, help="CPU window with no connections"
    )
    parser.add_argument("--per-job", type=int, default=10, help="streams per job")
    parser.add_argument("--jobs", type=int, default=100, help="jobs of part 2")
    parser.add_argument("--items", type=int, default=10, help="parcels per job of part 2")
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--heartbeat-s", type=float, default=15.0, help="SSE_HEARTBEAT_S")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the gateway in the idle window and the clients' gateway in run 1's "
        "latency phases (bench/results/streams_*.pyspy.txt)",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    args = parser.parse_args()
    if min(args.per_job, args.jobs, args.items, args.workers, args.clients) < 1:
        parser.error("--per-job, --jobs, --items, --workers and --clients must be positive")
    if args.idle_streams % args.per_job:
        parser.error("--idle-streams must be a multiple of --per-job")
    return args


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`, NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of every core so far, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def rss_kb(pid: int) -> int:
    """VmRSS of a process."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def settled_rss_kb(pid: int, rounds: int = 6, interval_s: float = 0.5) -> int:
    """VmRSS once two readings `interval_s` apart agree within 1% (or after `rounds`)."""
    last = rss_kb(pid)
    for _ in range(rounds):
        time.sleep(interval_s)
        now = rss_kb(pid)
        if abs(now - last) <= last / 100:
            return now
        last = now
    return last


class Bench:
    """The database, key prefix, tiers file and credentials shared by every gateway."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.tag = uuid.uuid4().hex[:10]
        self.database = f"bench_streams_{self.tag}"
        self.database_url = (
            make_url(args.database_url)
            .set(database=self.database)
            .render_as_string(hide_password=False)
        )
        self.admin_dsn = (
            make_url(args.database_url)
            .set(drivername="postgresql", database="postgres")
            .render_as_string(hide_password=False)
        )
        self.prefix = f"benchstreams:{self.tag}:"
        self.tiers = work / "tiers.json"
        self.tiers.write_text(
            json.dumps(
                {
                    "tiers": {
                        "bench": {
                            "rate_per_s": 100000,
                            "burst": 1000000,
                            "daily_quota": 0,
                            "max_page_size": 25,
                            "max_job_items": 100000,
                            "max_open_jobs": 100000,
                        }
                    }
                }
            )
        )
        self.key = ""
        self.worker_token = ""
        self.exit_codes: list[int | None] = []
        self.gateways = 0

    def env(self, ports: Sequence[int]) -> dict[str, str]:
        """Environment of a gateway (and of its CLI) on `ports`."""
        env = dict(os.environ)
        env.update(
            PYTHONUNBUFFERED="1",
            REDIS_URL=self.args.redis_url,
            DATABASE_URL=self.database_url,
            REDIS_KEY_PREFIX=self.prefix,
            GATEWAY_HOST="127.0.0.1",
            PUBLIC_PORT=str(ports[0]),
            PARCEL_INTERNAL_PORT=str(ports[1]),
            PARTY_INTERNAL_PORT=str(ports[2]),
            LOG_LEVEL="warning",
            ENVIRONMENT="development",
            DATA_DIR=str(self.work),
            TIERS_FILE=str(self.tiers),
            DEFAULT_TIER="bench",
            JOB_PLATFORMS=json.dumps({"parcel": [*PLATFORMS, IDLE_PLATFORM]}),
            SSE_HEARTBEAT_S=str(self.args.heartbeat_s),
            SSE_MAX_PER_JOB=str(self.args.per_job),
            SSE_MAX_PER_PRINCIPAL="100000",
            MAX_CONNECTIONS_PER_PORT=str(4 * self.args.idle_streams + 1000),
        )
        return env

    def start_gateway(self, name: str) -> tuple[Server, str, str]:
        """A gateway process on free ports: (server, public URL, parcel URL)."""
        ports = free_ports(3)
        self.gateways += 1
        server = Server(
            name=name,
            argv=[sys.executable, "-m", "gateway", "serve"],
            env=self.env(ports),
            base_url=f"http://127.0.0.1:{ports[0]}",
            ready_path="/ready",
            log_path=RESULTS_DIR / "logs" / f"streams_{name}_{self.gateways}.log",
            cwd=REPO_DIR,
        )
        server.start()
        server.wait_ready(120)
        return server, server.base_url, f"http://127.0.0.1:{ports[1]}"

    def stop_gateway(self, server: Server) -> None:
        """SIGTERM, and remember the exit code."""
        self.exit_codes.append(server.stop(grace_s=15))

    def cli(self, *argv: str) -> str:
        """Run the gateway CLI; the secret it prints is its last line."""
        out = subprocess.run(
            [sys.executable, "-m", "gateway", *argv],
            env=self.env([1, 2, 3]),
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return out.stdout.strip().splitlines()[-1]

    def credentials(self) -> None:
        """The API key and the worker token (after a gateway migrated the database)."""
        self.key = self.cli("keys", "create", "--name", f"bench-{self.tag}", "--tier", "bench")
        self.worker_token = self.cli(
            "tokens",
            "create",
            "--audience",
            "parcel",
            "--name",
            f"bench-w-{self.tag}",
            "--role",
            "worker",
        )

    async def create_db(self) -> None:
        """The run's database."""
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await admin.close()

    async def cleanup(self) -> None:
        """Drop the database and the key prefix."""
        redis = Redis.from_url(self.args.redis_url)
        keys = [k async for k in redis.scan_iter(match=self.prefix + "*", count=1000)]
        for i in range(0, len(keys), 1000):
            await redis.delete(*keys[i : i + 1000])
        await redis.aclose()
        admin = await asyncpg.connect(self.admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await admin.close()


async def submit_jobs(
    base_url: str, key: str, count: int, items: int, platforms: Sequence[str], tag: str
) -> list[str]:
    """`count` jobs of `items` parcels each; their ids."""
    headers = {"X-API-Key": key}
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(j: int) -> str:
            body = {
                "kind": "parcel_refresh",
                "label": f"bench {j}",
                "items": [
                    {"platform": platforms[i % len(platforms)], "parcel_id": f"{tag}-{j}-{i}"}
                    for i in range(items)
                ],
            }
            async with gate:
                response = await client.post("/v1/jobs", json=body, headers=headers)
            if response.status_code != 201:
                raise RuntimeError(f"POST /v1/jobs: {response.status_code} {response.text[:300]}")
            job_id: str = response.json()["id"]
            return job_id

        return list(await asyncio.gather(*(one(j) for j in range(count))))


def split(items: Sequence[str], parts: int) -> list[list[str]]:
    """`items` dealt round-robin into `parts` lists."""
    return [list(items[i::parts]) for i in range(parts)]


def on_all(
    clients: Sequence[ClientProcess],
    command: str,
    per_client: Sequence[dict[str, Any]] | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Send a command to every client at once (each its own arguments, when given)."""
    for i, client in enumerate(clients):
        client.send(command, **(per_client[i] if per_client else kwargs))
    return [client.answer() for client in clients]


def port_of(url: str) -> int:
    """The port of an http://host:port URL."""
    return int(url.rsplit(":", 1)[1])


# -- part 1 --------------------------------------------------------------------------------


def idle_run(bench: Bench, clients: Sequence[ClientProcess], run: int) -> dict[str, Any]:
    """One idle fan-out run on a fresh gateway."""
    args = bench.args
    n = args.idle_streams
    server, public, _ = bench.start_gateway(f"idle{run}")
    try:
        if not bench.key:
            bench.credentials()
        port = port_of(public)
        headers = {"X-API-Key": bench.key}
        jobs = asyncio.run(
            submit_jobs(
                public, bench.key, n // args.per_job, 1, [IDLE_PLATFORM], f"i{run}{bench.tag}"
            )
        )
        paths = [f"/v1/jobs/{j}/events" for j in jobs for _ in range(args.per_job)]
        print(f"  idle run {run}: {len(jobs)} jobs; warm-up", file=sys.stderr, flush=True)
        warm = paths[: min(len(paths), 300)]
        on_all(
            clients,
            "open_sse",
            [
                {"port": port, "paths": p, "headers": headers, "concurrency": 32}
                for p in split(warm, len(clients))
            ],
        )
        on_all(
            clients,
            "open_plain",
            port=port,
            count=300 // len(clients),
            refresh_s=0.0,
            concurrency=32,
        )
        on_all(clients, "close_sse")
        on_all(clients, "close_plain")
        on_all(clients, "report", reset=True)
        time.sleep(2)
        rss0 = settled_rss_kb(server.pid)

        print(f"  plain: {n} keep-alive connections", file=sys.stderr, flush=True)
        plain = on_all(
            clients,
            "open_plain",
            port=port,
            count=n // len(clients),
            refresh_s=PLAIN_REFRESH_S,
            concurrency=64,
        )
        time.sleep(PLAIN_REFRESH_S + 1.5)  # every one answered its repeat: still open
        rss_plain = settled_rss_kb(server.pid)
        print(f"  sse: {n} streams", file=sys.stderr, flush=True)
        opened = on_all(
            clients,
            "open_sse",
            [
                {"port": port, "paths": p, "headers": headers, "concurrency": 64}
                for p in split(paths, len(clients))
            ],
        )
        rss_both = settled_rss_kb(server.pid)
        mid = on_all(clients, "report", reset=False)
        on_all(clients, "close_plain")
        time.sleep(2)
        print(f"  idle CPU over {args.idle_s:g} s", file=sys.stderr, flush=True)
        profiler = None
        if args.profile and run == 1:
            profiler = start_py_spy(server.pid, RESULTS_DIR / "streams_idle.pyspy.txt")
        before = on_all(clients, "report", reset=False)
        client_cpu0 = sum(c.cpu_seconds() for c in clients)
        user0, sys0 = server.cpu_times()
        started = time.monotonic()
        time.sleep(args.idle_s)
        user1, sys1 = server.cpu_times()
        wall = time.monotonic() - started
        client_cpu = sum(c.cpu_seconds() for c in clients) - client_cpu0
        if profiler is not None:
            stop_py_spy(profiler)
        after = on_all(clients, "report", reset=True)
        rss_idle = rss_kb(server.pid)
        on_all(clients, "close_sse")
        # Baseline CPU: the same process once no client connection is open (its upkeep
        # loops, the same queued jobs), after the streams' ends were processed.
        time.sleep(3)
        base_user0, base_sys0 = server.cpu_times()
        base_started = time.monotonic()
        time.sleep(args.idle_base_s)
        base_user1, base_sys1 = server.cpu_times()
        base_pct = (
            100
            * (base_user1 - base_user0 + base_sys1 - base_sys0)
            / (time.monotonic() - base_started)
        )
    finally:
        bench.stop_gateway(server)
    streams_open = sum(a["open_streams"] for a in after)
    return {
        "n": n,
        "rss0_kb": rss0,
        "rss_plain_kb": rss_plain,
        "rss_both_kb": rss_both,
        "rss_after_idle_kb": rss_idle,
        "plain_kb_per_conn": (rss_plain - rss0) / n,
        "sse_kb_per_conn": (rss_both - rss_plain) / n,
        "plain_open": sum(p["open"] for p in plain),
        "plain_lost": sum(m["plain_lost"] for m in mid),
        "sse_opened": sum(o["opened"] for o in opened),
        "sse_open_s": max(o["open_s"] for o in opened),
        "refused": [r for o in opened for r in o["refused"]],
        "refused_count": sum(o["refused_count"] for o in opened),
        "streams_open_after_idle": streams_open,
        "idle_wall_s": wall,
        "idle_cpu_user_s": user1 - user0,
        "idle_cpu_sys_s": sys1 - sys0,
        "idle_cpu_pct": 100 * (user1 - user0 + sys1 - sys0) / wall,
        "no_connections_cpu_pct": base_pct,
        "client_cpu_pct": 100 * client_cpu / wall,
        "heartbeats_in_window": sum(a["heartbeats"] for a in after)
        - sum(b["heartbeats"] for b in before),
    }


# -- part 2 --------------------------------------------------------------------------------


async def run_workers(
    parcel_url: str, token: str, count: int, done: Callable[[], bool], tag: str
) -> None:
    """`count` workers until `done()` (or the phase times out)."""
    workers = [
        Worker(
            WorkerClient(parcel_url, token, f"bench-{tag}-{i}"),
            PLATFORMS,
            scrape,
            concurrency=10,
            lease_limit=10,
            wait_s=1.0,
            result_batch=10,
            result_delay_s=0.01,
        )
        for i in range(count)
    ]
    stop = asyncio.Event()
    running = [asyncio.create_task(w.run(stop)) for w in workers]
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    try:
        while not done() and time.monotonic() < deadline:
            if any(r.done() for r in running):
                for r in running:
                    if r.done() and r.exception() is not None:
                        raise RuntimeError("a worker stopped") from r.exception()
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*running, return_exceptions=True)
        await asyncio.gather(*(w.client.aclose() for w in workers))


def queued_seqs(published: dict[tuple[str, int], float]) -> set[tuple[str, int]]:
    """The first event of each job (its `job.queued`, before any stream opened)."""
    first: dict[str, int] = {}
    for job, seq in published:
        first[job] = min(seq, first.get(job, seq))
    return set(first.items())


async def feed_times(bench: Bench, jobs: set[str]) -> dict[tuple[str, int], float]:
    """When each event of `jobs` was appended to the feed (its entry id's Redis
    milliseconds: the publish right after the commit), by (job id, seq)."""
    redis = Redis.from_url(bench.args.redis_url)
    out: dict[tuple[str, int], float] = {}
    last = "-"
    try:
        while True:
            entries: Any = await redis.xrange(
                f"{bench.prefix}jobs:feed", min=last, max="+", count=10000
            )
            for entry_id, fields in entries:
                job = fields[b"job"].decode()
                if job in jobs:
                    ms, _, _ = entry_id.decode().partition("-")
                    out[(job, int(fields[b"seq"]))] = float(ms)
            if len(entries) < 10000:
                return out
            last = "(" + entries[-1][0].decode()
    finally:
        await redis.aclose()


def latency_phase(
    bench: Bench,
    clients: Sequence[ClientProcess],
    layout: str,
    follow_url: str,
    worker_url: str,
    public_a: str,
    run: int,
    servers: dict[str, Server],
) -> dict[str, Any]:
    """Jobs followed on `follow_url`'s gateway, completed by workers on `worker_url`.

    `servers`: the gateways by name, whose CPU during the workers' run is recorded."""
    args = bench.args
    tag = f"l{run}{layout[:1]}{bench.tag}"
    jobs = asyncio.run(submit_jobs(public_a, bench.key, args.jobs, args.items, PLATFORMS, tag))
    port = port_of(follow_url)
    headers = {"X-API-Key": bench.key}
    paths = [f"/v1/jobs/{j}/events" for j in jobs for _ in range(args.per_job)]
    on_all(clients, "report", reset=True)
    opened = on_all(
        clients,
        "open_sse",
        [
            {"port": port, "paths": p, "headers": headers, "concurrency": 64}
            for p in split(paths, len(clients))
        ],
    )
    clients[0].call(
        "start_rtt", port=port, path=f"/v1/jobs/{jobs[0]}", headers=headers, interval_s=0.02
    )
    expected = len(paths)
    seen = {"terminal": 0, "polled": 0.0}

    def done() -> bool:
        # Polled from the workers' loop at most every 0.5 s (a pipe round trip each).
        now = time.monotonic()
        if now - seen["polled"] < 0.5:
            return False
        seen["polled"] = now
        seen["terminal"] = sum(r["terminal"] for r in on_all(clients, "count"))
        return seen["terminal"] >= expected

    print(
        f"  {layout}: {expected} streams on {len(jobs)} jobs; workers", file=sys.stderr, flush=True
    )
    cpu0 = {name: server.cpu_seconds() for name, server in servers.items()}
    own0 = time.process_time()
    machine0 = machine_busy()
    clients0 = sum(c.cpu_seconds() for c in clients)
    profiler = None
    if args.profile and run == 1:
        follower = next(s for s in servers.values() if s.base_url == follow_url)
        out = RESULTS_DIR / f"streams_{layout.replace(' ', '_')}.pyspy.txt"
        profiler = start_py_spy(follower.pid, out)
    started = time.monotonic()
    try:
        asyncio.run(run_workers(worker_url, bench.worker_token, args.workers, done, tag))
    finally:
        if profiler is not None:
            stop_py_spy(profiler)
    elapsed = time.monotonic() - started
    busy = {
        name: 100 * (server.cpu_seconds() - cpu0[name]) / elapsed
        for name, server in servers.items()
    }
    busy["workers (bench process)"] = 100 * (time.process_time() - own0) / elapsed
    busy["clients"] = 100 * (sum(c.cpu_seconds() for c in clients) - clients0) / elapsed
    machine1 = machine_busy()
    # Every core of the machine (PostgreSQL, Redis and anything else running included).
    busy["machine (all cores)"] = (
        100 * (os.cpu_count() or 1) * (machine1[0] - machine0[0]) / (machine1[1] - machine0[1])
    )
    clients[0].call("stop_rtt")
    reports = on_all(clients, "report", reset=True)
    on_all(clients, "close_sse")
    latencies = [x for r in reports for x in r["latencies_ms"]]
    rtt = reports[0]["rtt_ms"]
    published = asyncio.run(feed_times(bench, set(jobs)))
    # Every stream must get every event published after it opened, once: per job, the
    # events received against per_job x the job's published events (all of them came
    # after the streams opened, but the `job.queued` of the submission).
    got: dict[tuple[str, int], int] = {}
    for r in reports:
        for job, seq, _ in r["received"]:
            got[(job, seq)] = got.get((job, seq), 0) + 1
    queued = queued_seqs(published)
    live = [k for k in published if k not in queued]
    missed = sum(max(0, args.per_job - got.get(k, 0)) for k in live)
    duplicated = sum(max(0, n - args.per_job) for n in got.values())
    from_publish = [
        1000 * recv - published[(job, seq)]
        for r in reports
        for job, seq, recv in r["received"]
        if (job, seq) in published
    ]
    return {
        "layout": layout,
        "streams": expected,
        "opened": sum(o["opened"] for o in opened),
        "refused": [x for o in opened for x in o["refused"]]
        + [x for r in reports for x in r["refused"]],
        "terminal": sum(r["terminal"] for r in reports),
        "events": len(latencies),
        "latencies_ms": latencies,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
        "missed_events": missed,
        "duplicated_events": duplicated,
        "from_publish_ms": from_publish,
        "publish_p50_ms": percentile(from_publish, 0.5),
        "publish_p99_ms": percentile(from_publish, 0.99),
        "rtt_ms": rtt,
        "rtt_p50_ms": percentile(rtt, 0.5),
        "rtt_p99_ms": percentile(rtt, 0.99),
        "elapsed_s": elapsed,
        "cpu_pct": busy,
    }


# -- report --------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:,.{digits}f}"


def report(
    args: argparse.Namespace, idle: list[dict[str, Any]], lat: list[dict[str, Any]]
) -> dict[str, Any]:
    """Print the table; the summary."""
    summary: dict[str, Any] = {}
    head = f"{'':46} {'figure':>18} {'baseline':>18} {'ratio':>7}"

    def row(label: str, figure: str, baseline: str = "", ratio: str = "") -> None:
        print(f"{label:46} {figure:>18} {baseline:>18} {ratio:>7}")

    if idle:
        med = lambda key: statistics.median(r[key] for r in idle)  # noqa: E731
        summary["idle"] = {
            k: med(k)
            for k in (
                "sse_kb_per_conn",
                "plain_kb_per_conn",
                "idle_cpu_pct",
                "client_cpu_pct",
                "no_connections_cpu_pct",
                "rss0_kb",
                "rss_both_kb",
                "sse_open_s",
            )
        }
        s = summary["idle"]
        print(
            f"\nidle fan-out: {args.idle_runs} run(s), {args.idle_streams:,} SSE streams "
            f"({args.idle_streams // args.per_job} jobs x {args.per_job}) vs as many plain "
            f"keep-alive connections, one gateway process\n"
        )
        print(head)
        print("-" * len(head))
        row(
            "RSS KB per connection (SSE | plain)",
            _fmt(s["sse_kb_per_conn"]),
            _fmt(s["plain_kb_per_conn"]),
            _fmt(_ratio(s["sse_kb_per_conn"], s["plain_kb_per_conn"]), 2),
        )
        row(
            "RSS MB: before -> with both open",
            f"{s['rss0_kb'] / 1024:.0f} -> {s['rss_both_kb'] / 1024:.0f}",
        )
        row(
            "gateway CPU % of a core (streams | none open)",
            _fmt(s["idle_cpu_pct"], 2),
            _fmt(s["no_connections_cpu_pct"], 2),
            _fmt(_ratio(s["idle_cpu_pct"], s["no_connections_cpu_pct"]), 2),
        )
        print(
            f"  (streams: {args.idle_s:g} s with every stream open and idle, heartbeat "
            f"{args.heartbeat_s:g} s; none open: {args.idle_base_s:g} s after they closed)"
        )
        row("client processes' CPU % (same window)", _fmt(s["client_cpu_pct"], 2))
        row("time to open every stream, s", _fmt(s["sse_open_s"]))
    if lat:
        print(
            f"\ncommit-to-client latency: {args.runs} run(s); {args.jobs} jobs x "
            f"{args.items} parcels, {args.jobs * args.per_job:,} SSE clients, "
            f"{args.workers} workers\n"
        )
        print(head)
        print("-" * len(head))
        for layout in ("one process", "two replicas"):
            phases = [p for p in lat if p["layout"] == layout]
            values = [x for p in phases for x in p["latencies_ms"]]
            rtt = [x for p in phases for x in p["rtt_ms"]]
            pub = [x for p in phases for x in p["from_publish_ms"]]
            s = {
                "events": len(values),
                "p50_ms": percentile(values, 0.5),
                "p99_ms": percentile(values, 0.99),
                "max_ms": max(values, default=float("nan")),
                "rtt_p50_ms": percentile(rtt, 0.5),
                "rtt_p99_ms": percentile(rtt, 0.99),
                "rtts": len(rtt),
                "publish_p50_ms": percentile(pub, 0.5),
                "publish_p99_ms": percentile(pub, 0.99),
                "matched": len(pub),
                "missed": sum(p["missed_events"] for p in phases),
                "cpu_pct": {
                    k: statistics.median(p["cpu_pct"][k] for p in phases)
                    for k in (phases[0]["cpu_pct"] if phases else {})
                },
                "elapsed_s": statistics.median(p["elapsed_s"] for p in phases) if phases else 0,
            }
            summary[layout] = s
            row(
                f"{layout}: event p50 / p99 ms (GET RTT)",
                f"{_fmt(s['p50_ms'])} / {_fmt(s['p99_ms'])}",
                f"{_fmt(s['rtt_p50_ms'])} / {_fmt(s['rtt_p99_ms'])}",
                _fmt(_ratio(s["p99_ms"], s["rtt_p99_ms"]), 2),
            )
            row(
                "  from the feed append p50 / p99 ms",
                f"{_fmt(s['publish_p50_ms'])} / {_fmt(s['publish_p99_ms'])}",
                f"({s['matched']:,} matched, {s['missed']} missed)",
                _fmt(_ratio(s["publish_p99_ms"], s["rtt_p99_ms"]), 2),
            )
            row(
                "  events received (max ms) | round trips",
                f"{s['events']:,} ({_fmt(s['max_ms'])})",
                f"{s['rtts']:,}",
            )
            print(
                f"  {s['elapsed_s']:.1f} s to complete; CPU % of a core meanwhile: "
                + ", ".join(f"{k} {v:.0f}" for k, v in s["cpu_pct"].items())
            )
        print(
            "\nratio = event p99 / GET /v1/jobs/{id} round-trip p99: an event arrives in "
            "that many round trips"
        )
    return summary


def failures(bench: Bench, idle: list[dict[str, Any]], lat: list[dict[str, Any]]) -> list[str]:
    """What went wrong (empty when everything checked out)."""
    bad: list[str] = []
    for i, r in enumerate(idle, 1):
        if r["refused_count"] or r["sse_opened"] != r["n"]:
            bad.append(f"idle {i}: {r['sse_opened']} of {r['n']} opened, {r['refused'][:3]}")
        if r["plain_open"] != r["n"] or r["plain_lost"]:
            bad.append(f"idle {i}: plain {r['plain_open']} open, {r['plain_lost']} lost")
        if r["streams_open_after_idle"] != r["n"]:
            bad.append(f"idle {i}: {r['streams_open_after_idle']} streams open after the window")
    for p in lat:
        if p["refused"] or p["terminal"] != p["streams"]:
            bad.append(
                f"{p['layout']}: {p['terminal']} of {p['streams']} terminal, {p['refused'][:3]}"
            )
        if p["missed_events"] or p["duplicated_events"]:
            bad.append(
                f"{p['layout']}: streams missed {p['missed_events']} events and got "
                f"{p['duplicated_events']} twice"
            )
    for code in bench.exit_codes:
        if code != 0:
            bad.append(f"a gateway exited {code}")
    return bad


def main() -> int:
    """Run the benchmark; exit 1 when a check fails."""
    args = parse_args()
    # SIGTERM (a timeout, a CI cancel) unwinds like Ctrl-C: the gateways run in sessions
    # of their own and would outlive the benchmark otherwise.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    (RESULTS_DIR / "logs").mkdir(parents=True, exist_ok=True)
    limit = raise_nofile(NOFILE)  # the gateways inherit it
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True
    ).stdout.strip()
    load = os.getloadavg()
    if load[0] > (os.cpu_count() or 1) / 2:
        print(f"warning: load average {load[0]:.1f} before the start", file=sys.stderr)
    idle: list[dict[str, Any]] = []
    lat: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gw-bench-streams-") as tmp:
        bench = Bench(args, Path(tmp))
        asyncio.run(bench.create_db())
        clients = [ClientProcess(nofile=NOFILE) for _ in range(args.clients)]
        try:
            for run in range(1, args.idle_runs + 1):
                print(f"idle run {run}/{args.idle_runs}", file=sys.stderr, flush=True)
                idle.append(idle_run(bench, clients, run))
                r = idle[-1]
                print(
                    f"  {r['sse_kb_per_conn']:.1f} KB/stream, {r['plain_kb_per_conn']:.1f} "
                    f"KB/plain, idle CPU {r['idle_cpu_pct']:.2f} %",
                    file=sys.stderr,
                    flush=True,
                )
            if args.runs:
                a, public_a, parcel_a = bench.start_gateway("A")
                b, public_b, _ = bench.start_gateway("B")
                try:
                    if not bench.key:
                        bench.credentials()
                    for run in range(1, args.runs + 1):
                        print(f"latency run {run}/{args.runs}", file=sys.stderr, flush=True)
                        layouts = [("one process", public_a), ("two replicas", public_b)]
                        if run % 2 == 0:
                            layouts.reverse()
                        for layout, follow in layouts:
                            lat.append(
                                latency_phase(
                                    bench,
                                    clients,
                                    layout,
                                    follow,
                                    parcel_a,
                                    public_a,
                                    run,
                                    {"gateway A": a, "gateway B": b},
                                )
                            )
                            p = lat[-1]
                            print(
                                f"    p50 {p['p50_ms']:.1f} ms, p99 {p['p99_ms']:.1f} ms over "
                                f"{p['events']} events (from the feed append p99 "
                                f"{p['publish_p99_ms']:.1f} ms); RTT p99 {p['rtt_p99_ms']:.1f} ms; "
                                f"missed {p['missed_events']}, duplicated "
                                f"{p['duplicated_events']}; {p['elapsed_s']:.1f} s, CPU % "
                                + ", ".join(f"{k} {v:.0f}" for k, v in p["cpu_pct"].items()),
                                file=sys.stderr,
                                flush=True,
                            )
                finally:
                    bench.stop_gateway(b)
                    bench.stop_gateway(a)
        finally:
            for client in clients:
                client.quit()
            asyncio.run(bench.cleanup())
    # The raw runs first: a failing report must not lose minutes of measurements.
    raw = RESULTS_DIR / "streams.json"
    raw.write_text(json.dumps({"idle_runs": idle, "latency_phases": lat}, default=str))
    summary = report(args, idle, lat)
    bad = failures(bench, idle, lat)
    for line in bad:
        print(f"FAILED: {line}")
    total = time.monotonic() - started
    print(
        f"\ntotal {total:.0f} s; load average before {load[0]:.2f}, "
        f"after {os.getloadavg()[0]:.2f}; "
        f"open-file limit {limit}"
    )
    record = {
        "parameters": vars(args),
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_before": load,
        "load_average_after": os.getloadavg(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "total_s": total,
        "summary": summary,
        "failures": bad,
        "idle_runs": idle,
        "latency_phases": [
            {k: v for k, v in p.items() if k not in ("latencies_ms", "rtt_ms", "from_publish_ms")}
            for p in lat
        ],
    }
    (RESULTS_DIR / "streams.json").write_text(json.dumps(record, indent=2, default=str))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
