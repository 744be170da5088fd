"""Worker-plane benchmark: the real gateway vs Celery, on the local Redis and PostgreSQL.

    .venv/bin/pip install -e '.[bench]'          # Celery, for the comparison
    .venv/bin/python bench/worker_plane.py       # --runs 3 --tasks 50000 --workers 50

Per run: a fresh PostgreSQL database and Redis key prefix; the real gateway
(`python -m gateway serve`) as a subprocess; N parcel tasks enqueued over HTTP (not
timed); W simulated workers (the repository's worker client, in this process) leasing in
batches, building a valid ParcelResult per task and posting results in batches. The clock
runs from the workers' start until every result was acknowledged (= committed to
PostgreSQL). Then PostgreSQL is checked: every task has exactly one history row (lost = 0,
duplicate completions = 0). The same run then has Celery 5 process N no-op tasks with a
W-thread worker on the same Redis. Medians across runs; table on stdout, the full
record in bench/results/worker_plane.json.
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
from collections import Counter
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

from profiling import start_py_spy, stop_py_spy  # noqa: E402
from servers import Server, free_ports  # noqa: E402

from taxlien_worker import Task, TaskContext, Worker, WorkerClient  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
PLATFORMS = ("alpha", "beta", "gamma", "delta")
RUN_TIMEOUT_S = 600.0


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--lease-batch", type=int, default=100, help="limit of /internal/work")
    parser.add_argument("--result-batch", type=int, default=100, help="items per results post")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument(
        "--celery-pool",
        default="threads",
        choices=["threads", "prefork", "solo"],
        help="Celery worker pool (threads: one process, --workers threads, like the gateway "
        "side's one process of --workers async workers)",
    )
    parser.add_argument("--celery-concurrency", type=int, default=None, help="default: --workers")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the gateway during the first run"
    )
    args = parser.parse_args()
    if args.runs < 1 or args.tasks < 1 or args.workers < 1:
        parser.error("--runs, --tasks and --workers must be positive")
    return args


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_busy() -> tuple[int, int]:
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _backend_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by every PostgreSQL and Redis server process."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {"postgres": 0.0, "redis-server": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name in used:
            fields = text.rsplit(")", 1)[1].split()
            used[name] += (int(fields[11]) + int(fields[12])) / ticks
    return used


def _histogram(text: str, handler: str) -> dict[float, float]:
    """Cumulative bucket counts of the gateway's request histogram for one route."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("http_request_duration_seconds_bucket") and (
            f'handler="{handler}"' in line
        ):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def _histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Prometheus-style quantile (linear within the bucket) of the counts between scrapes."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return float("nan")
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


class GatewayRun:
    """One gateway measurement on a fresh database and key prefix."""

    def __init__(self, args: argparse.Namespace, run: int) -> None:
        self.args = args
        self.run = run
        self.tag = uuid.uuid4().hex[:10]
        self.database = f"bench_wp_{self.tag}"
        self.database_url = (
            make_url(args.database_url)
            .set(database=self.database)
            .render_as_string(hide_password=False)
        )
        self.prefix = f"benchwp:{self.tag}:"
        self.admin_dsn = (
            make_url(args.database_url)
            .set(drivername="postgresql", database="postgres")
            .render_as_string(hide_password=False)
        )

    def env(self, ports: list[int], data_dir: str) -> dict[str, str]:
        """Environment of the gateway and of its CLI."""
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
            DATA_DIR=data_dir,
        )
        return env

    def token(self, env: dict[str, str], name: str, role: str) -> str:
        """`gateway tokens create`, the operator's way; the token is the last line."""
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "tokens",
                "create",
                "--audience",
                "parcel",
                "--name",
                name,
                "--role",
                role,
            ],
            env=env,
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return out.stdout.strip().splitlines()[-1]

    async def execute(self) -> dict[str, Any]:
        """Create the database, run the gateway, measure, verify, clean up."""
        admin = await asyncpg.connect(self.admin_dsn)
        await admin.execute(f'CREATE DATABASE "{self.database}"')
        try:
            with tempfile.TemporaryDirectory(prefix="gw-bench-") as data_dir:
                ports = free_ports(3)
                env = self.env(ports, data_dir)
                gateway = Server(
                    name="gateway",
                    argv=[sys.executable, "-m", "gateway", "serve"],
                    env=env,
                    base_url=f"http://127.0.0.1:{ports[1]}",
                    ready_path="/ready",
                    log_path=RESULTS_DIR / "logs" / f"worker_plane_gateway_{self.run}.log",
                    cwd=REPO_DIR,
                )
                gateway.start()
                try:
                    gateway.wait_ready(120)
                    producer = self.token(env, f"bench-producer-{self.tag}", "producer")
                    worker_token = self.token(env, f"bench-worker-{self.tag}", "worker")
                    result = await self.measure(gateway, producer, worker_token)
                finally:
                    result_exit = gateway.stop(grace_s=15)
                result["gateway_exit_code"] = result_exit
                result.update(await self.verify())
                return result
        finally:
            redis = Redis.from_url(self.args.redis_url)
            keys = [k async for k in redis.scan_iter(match=self.prefix + "*", count=1000)]
            for i in range(0, len(keys), 1000):
                await redis.delete(*keys[i : i + 1000])
            await redis.aclose()
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            await admin.close()

    async def enqueue(self, http: httpx.AsyncClient, producer: str) -> float:
        """Enqueue every task in batches of 1000; returns the time it took."""
        started = time.perf_counter()
        batches = [
            [
                {
                    "platform": PLATFORMS[i % len(PLATFORMS)],
                    "key": f"p-{i:07d}",
                    "payload": {"n": i},
                }
                for i in range(start, min(start + 1000, self.args.tasks))
            ]
            for start in range(0, self.args.tasks, 1000)
        ]
        limit = asyncio.Semaphore(4)

        async def send(batch: list[dict[str, Any]]) -> None:
            async with limit:
                response = await http.post(
                    "/internal/tasks",
                    json={"tasks": batch},
                    headers={"X-Worker-Token": producer},
                    timeout=60,
                )
                response.raise_for_status()
                assert response.json()["enqueued"] == len(batch), response.text

        await asyncio.gather(*(send(b) for b in batches))
        return time.perf_counter() - started

    async def measure(self, gateway: Server, producer: str, token: str) -> dict[str, Any]:
        """Enqueue, then run the workers until every result is acknowledged."""
        limits = httpx.Limits(max_connections=4 * self.args.workers + 16)
        async with httpx.AsyncClient(base_url=gateway.base_url, limits=limits, timeout=60) as http:
            enqueue_s = await self.enqueue(http, producer)
            metrics_before = (await http.get("/metrics")).text

            async def scrape(task: Task, ctx: TaskContext) -> dict[str, Any]:
                return {
                    "parcel_id": task.key,
                    "state": "FL",
                    "county": "Bench County",
                    "platform": task.platform,
                    "address": f"{task.payload['n']} Main St",
                    "owner_name": "Jane Doe",
                    "assessed_value": "125000.00",
                    "tax_amount_due": "1234.50",
                    "lien_status": "active",
                    "auction_date": "2027-03-01",
                    "source_url": f"https://{task.platform}.example/p/{task.key}",
                    "scraped_at": "2026-11-22T18:30:00+00:00",
                    "extra": {"n": task.payload["n"]},
                }

            workers = [
                Worker(
                    # One HTTP client per worker, as separate worker processes would have:
                    # a single pool shared by 50 workers costs O(connections) per request.
                    WorkerClient(gateway.base_url, token, f"bench-{i}"),
                    PLATFORMS,
                    scrape,
                    concurrency=self.args.lease_batch,
                    lease_limit=self.args.lease_batch,
                    wait_s=2.0,
                    result_batch=self.args.result_batch,
                    result_delay_s=0.02,
                )
                for i in range(self.args.workers)
            ]
            stop = asyncio.Event()
            profiler = self.start_profiler(gateway)
            cpu_gateway, busy, backends = gateway.cpu_seconds(), _cpu_busy(), _backend_cpu_s()
            cpu_client = time.process_time()
            started = time.perf_counter()
            running = [asyncio.create_task(w.run(stop)) for w in workers]
            deadline = started + RUN_TIMEOUT_S
            while time.perf_counter() < deadline:
                if sum(w.stats.outcomes["accepted"] for w in workers) >= self.args.tasks:
                    break
                if any(r.done() for r in running):
                    break
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
            cpu_gateway = gateway.cpu_seconds() - cpu_gateway
            cpu_client = time.process_time() - cpu_client
            busy_after = _cpu_busy()
            backends = {k: v - backends[k] for k, v in _backend_cpu_s().items()}
            self.stop_profiler(profiler)
            stop.set()
            stats = await asyncio.gather(*running)
            await asyncio.gather(*(w.client.aclose() for w in workers))
            metrics_after = (await http.get("/metrics")).text

        outcomes: Counter[str] = Counter()
        for s in stats:
            outcomes.update(s.outcomes)
        lease_lat = [x for s in stats for x in s.lease_latencies_s]
        result_lat = [x for s in stats for x in s.result_latencies_s]
        server = {}
        for route in ("/internal/work", "/internal/results"):
            before, after = _histogram(metrics_before, route), _histogram(metrics_after, route)
            server[route] = {
                "p50_ms": 1000 * _histogram_quantile(before, after, 0.50),
                "p99_ms": 1000 * _histogram_quantile(before, after, 0.99),
            }
        machine_busy = (busy_after[0] - busy[0]) / max(1, busy_after[1] - busy[1])
        return {
            "enqueue_s": enqueue_s,
            "elapsed_s": elapsed,
            "tasks_per_s": outcomes["accepted"] / elapsed,
            "outcomes": dict(outcomes),
            "unacknowledged": sum(len(s.unacknowledged) for s in stats),
            "lost_leases": sum(s.lost for s in stats),
            "work_requests": len(lease_lat),
            "results_requests": len(result_lat),
            "client_work_p50_ms": 1000 * _percentile(lease_lat, 0.50),
            "client_work_p99_ms": 1000 * _percentile(lease_lat, 0.99),
            "client_results_p50_ms": 1000 * _percentile(result_lat, 0.50),
            "client_results_p99_ms": 1000 * _percentile(result_lat, 0.99),
            "server": server,
            "gateway_cpu_s": cpu_gateway,
            "client_cpu_s": cpu_client,
            # Whole servers: other users of the same PostgreSQL/Redis count here too.
            "postgres_cpu_s": backends["postgres"],
            "redis_cpu_s": backends["redis-server"],
            "machine_busy": machine_busy,
        }

    def start_profiler(self, gateway: Server) -> subprocess.Popen[bytes] | None:
        """py-spy on the gateway for the first run, when asked."""
        if not (self.args.profile and self.run == 1):
            return None
        return start_py_spy(gateway.pid, RESULTS_DIR / "worker_plane_gateway.pyspy.txt")

    def stop_profiler(self, profiler: subprocess.Popen[bytes] | None) -> None:
        """Stop py-spy, which writes its output."""
        if profiler is not None:
            stop_py_spy(profiler)

    async def verify(self) -> dict[str, Any]:
        """Count what PostgreSQL holds: every task exactly once."""
        conn = await asyncpg.connect(
            make_url(self.database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        try:
            rows = await conn.fetchval("SELECT count(*) FROM parcel_history")
            tasks = await conn.fetchval("SELECT count(DISTINCT task_id) FROM parcel_history")
            parcels = await conn.fetchval("SELECT count(*) FROM parcels")
        finally:
            await conn.close()
        return {
            "history_rows": rows,
            "distinct_tasks": tasks,
            "parcels": parcels,
            "lost": self.args.tasks - tasks,
            "duplicate_completions": rows - tasks,
        }


def run_celery(args: argparse.Namespace, run: int) -> dict[str, Any]:
    """Celery 5 with a W-thread worker processing N no-op tasks on the same Redis."""
    import redis

    prefix = f"benchcelery:{uuid.uuid4().hex[:10]}:"
    env = dict(os.environ)
    env.update(
        BENCH_CELERY_BROKER=args.redis_url,
        BENCH_CELERY_PREFIX=prefix,
        BENCH_CELERY_TOTAL=str(args.tasks),
        PYTHONPATH=str(BENCH_DIR),
    )
    from celery import Celery

    # A fresh producer app per run: kombu caches connections (and with them the key
    # prefix) per app, and each run uses its own prefix.
    producer_app = Celery("bench_producer", broker=args.redis_url)
    producer_app.conf.broker_transport_options = {"global_keyprefix": prefix}
    client = redis.Redis.from_url(args.redis_url)
    started = time.perf_counter()
    with producer_app.producer_or_acquire() as producer:
        for i in range(args.tasks):
            producer_app.send_task("bench.noop", (i,), producer=producer)
    producer_app.close()
    enqueue_s = time.perf_counter() - started
    log = (RESULTS_DIR / "logs" / f"worker_plane_celery_{run}.log").open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "celery_noop",
            "worker",
            "--pool",
            args.celery_pool,
            "--concurrency",
            str(args.celery_concurrency or args.workers),
            "--loglevel",
            "warning",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        cwd=BENCH_DIR,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while client.get(prefix + "end") is None and time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"celery worker exited with {worker.returncode}")
            time.sleep(0.05)
        start_ts, end_ts = client.get(prefix + "start"), client.get(prefix + "end")
        done = int(client.get(prefix + "done") or 0)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        log.close()
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    if start_ts is None or end_ts is None:
        raise RuntimeError("celery did not finish within the time limit")
    elapsed = float(end_ts) - float(start_ts)
    return {"enqueue_s": enqueue_s, "elapsed_s": elapsed, "tasks_per_s": done / elapsed}


def main() -> int:
    """Run the benchmark; exit 1 when a correctness check fails."""
    args = parse_args()
    (RESULTS_DIR / "logs").mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    gateway_runs: list[dict[str, Any]] = []
    celery_runs: list[dict[str, Any]] = []
    for run in range(1, args.runs + 1):
        print(f"run {run}/{args.runs}: gateway ...", file=sys.stderr, flush=True)
        gateway_runs.append(asyncio.run(GatewayRun(args, run).execute()))
        g = gateway_runs[-1]
        print(f"  gateway {g['tasks_per_s']:.0f} tasks/s", file=sys.stderr, flush=True)
        if not args.skip_celery:
            print(f"run {run}/{args.runs}: celery ...", file=sys.stderr, flush=True)
            celery_runs.append(run_celery(args, run))
            print(f"  celery {celery_runs[-1]['tasks_per_s']:.0f} tasks/s", file=sys.stderr)

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    def server_median(route: str, key: str) -> float:
        return statistics.median(r["server"][route][key] for r in gateway_runs)

    gw = median(gateway_runs, "tasks_per_s")
    cel = median(celery_runs, "tasks_per_s") if celery_runs else float("nan")
    lost = max(r["lost"] for r in gateway_runs)
    dupes = max(r["duplicate_completions"] for r in gateway_runs)
    print(f"\nworker plane: {args.tasks} tasks, {args.workers} workers, {args.runs} runs")
    print(f"lease batch {args.lease_batch}, result batch {args.result_batch}; medians\n")
    print(f"{'':34} {'median':>10} {'min':>10} {'max':>10}")
    rows = [("gateway tasks/s (end to end)", [r["tasks_per_s"] for r in gateway_runs])]
    if celery_runs:
        rows.append(("celery tasks/s (no-op)", [r["tasks_per_s"] for r in celery_runs]))
    for label, values in rows:
        mid, low, high = statistics.median(values), min(values), max(values)
        print(f"{label:34} {mid:>10.0f} {low:>10.0f} {high:>10.0f}")
    for route in ("/internal/work", "/internal/results"):
        short = route.rsplit("/", 1)[1]
        print(
            f"{short + ' p50/p99 ms (server)':34} {server_median(route, 'p50_ms'):>10.1f} "
            f"{server_median(route, 'p99_ms'):>10.1f}"
        )
        print(
            f"{short + ' p50/p99 ms (client)':34} "
            f"{median(gateway_runs, f'client_{short}_p50_ms'):>10.1f} "
            f"{median(gateway_runs, f'client_{short}_p99_ms'):>10.1f}"
        )
    print(
        f"{'gateway CPU s / client CPU s':34} {median(gateway_runs, 'gateway_cpu_s'):>10.1f} "
        f"{median(gateway_runs, 'client_cpu_s'):>10.1f}"
    )
    print(
        f"{'postgres CPU s / redis CPU s':34} {median(gateway_runs, 'postgres_cpu_s'):>10.1f} "
        f"{median(gateway_runs, 'redis_cpu_s'):>10.1f}"
    )
    print(f"{'machine busy during run':34} {100 * median(gateway_runs, 'machine_busy'):>9.0f}%")
    print(f"\nlost = {lost}, duplicate completions = {dupes}")
    if celery_runs:
        print(f"gateway / celery (tasks/s, medians): {gw / cel:.2f}")
    record = {
        "parameters": vars(args),
        "load_average_before": load,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "gateway_runs": gateway_runs,
        "celery_runs": celery_runs,
        "median_gateway_tasks_per_s": gw,
        "median_celery_tasks_per_s": cel,
        "ratio": gw / cel if celery_runs else None,
    }
    (RESULTS_DIR / "worker_plane.json").write_text(json.dumps(record, indent=2, default=str))
    bad = any(r["lost"] or r["duplicate_completions"] or r["unacknowledged"] for r in gateway_runs)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
