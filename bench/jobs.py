"""Client-jobs benchmark (issue 12): submissions, completion lag and a 1M-row download.

    .venv/bin/python bench/jobs.py                     # --runs 3 --jobs 20 --rate 1
    .venv/bin/python bench/jobs.py --runs 1 --jobs 5 --download-rows 50000   # quick look

Per run: a fresh PostgreSQL database and Redis key prefix and the real gateway
(`python -m gateway serve`) as a subprocess, an `enterprise` API key (`gateway keys
create`: unlimited credits, 1M items per job) and worker/producer tokens (`gateway tokens
create`). Three measurements, each against a baseline taken in the same run, because on
this 2-core machine absolute figures move with whatever else runs:

1. **Submissions**: `--jobs` jobs of `--items` parcels are posted to `POST /v1/jobs` at a
   steady `--rate` (open loop, evenly spaced, as bench/paced.py does: a slow answer does
   not delay the schedule, and latency counts from when a request was due), while 50
   workers (the repository's `taxlien_worker`, fake scrape, valid ParcelResult) drain
   them. Baseline: the same number of tasks, `--items` per request, through the
   producers' `POST /internal/tasks` at the same rate, drained by the same workers. The
   two phases alternate their order from run to run.
2. **Completion lag**: a separate process follows the cross-job feed (`<prefix>jobs:feed`,
   XREAD BLOCK) and stamps each `job.completed` when it sees it. The workers' client
   stamps each `POST /internal/results` when it was sent and when its answer came back
   (an answered post is committed). The job became `completed` in the transaction that
   committed its last item, so that commit lies between the last post's send and its
   answer: the lag is reported from the answer (a lower bound, negative when the event
   outran the HTTP answer) and from the start of that transaction (`jobs.finished_at`,
   PostgreSQL's `now()`: an upper bound). Baseline: the results post's round trip.
3. **Download**: one `completed` job of `--download-rows` items seeded directly in
   PostgreSQL (a `jobs` row, `job_items` and `parcels` rows from generate_series: no
   worker ever produced them), a signed link from `POST /v1/jobs/{id}/download`, streamed
   with httpx and its CSV rows counted. The gateway's resident memory is sampled every
   5 ms from /proc/<pid>/status (VmRSS, and VmHWM after resetting it through clear_refs)
   and its peak growth over the value before the download is reported. Baseline: the
   gateway's own export statement streamed by asyncpg `COPY ... TO STDOUT` in this
   process.

Medians across runs (latency percentiles over every job or request of every run); table
on stdout, the full record in bench/results/jobs.json, gateway logs in
bench/results/logs/. Exit code 1 when a job did not complete, a row is missing from the
download, or the gateway did not exit 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

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
from worker_plane import _histogram_quantile  # noqa: E402

from taxlien_worker import Result, ResultOutcome, Task, TaskContext, Worker, WorkerClient  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
PLATFORMS = ("alpha", "beta", "gamma", "delta")
PHASE_TIMEOUT_S = 300.0
TERMINAL = ("completed", "partially_failed", "failed", "cancelled", "expired")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=20, help="jobs (and task batches) per run")
    parser.add_argument("--items", type=int, default=1000, help="parcels per job (and batch)")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="job submissions (and task batches) per second"
    )
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--lease-batch", type=int, default=100, help="limit of /internal/work")
    parser.add_argument("--result-batch", type=int, default=100, help="items per results post")
    parser.add_argument("--download-rows", type=int, default=1_000_000, help="0: no download")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the gateway during run 1's jobs phase (bench/results/jobs_gateway.pyspy.txt)",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    args = parser.parse_args()
    if min(args.runs, args.jobs, args.items, args.workers) < 1 or args.rate <= 0:
        parser.error("--runs, --jobs, --items, --workers and --rate must be positive")
    if args.download_rows < 0:
        parser.error("--download-rows must be 0 or more")
    return args


def route_buckets(text: str, handler: str, method: str) -> dict[float, float]:
    """Cumulative bucket counts of the gateway's request histogram for one route and method
    (GET and POST /v1/jobs share the handler label)."""
    buckets: dict[float, float] = {}
    wanted = (f'handler="{handler}"', f'method="{method}"')
    for line in text.splitlines():
        if line.startswith("http_request_duration_seconds_bucket") and all(
            w in line for w in wanted
        ):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`, NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the workers: the repository's client, with every results post timed -----------------


@dataclass
class Post:
    """One `POST /internal/results` as the worker saw it (monotonic clock)."""

    sent: float
    answered: float
    accepted: list[str]  # parcel ids whose result was accepted (stored) by this post


@dataclass
class PostLog:
    """Every results post of every worker, and the keys accepted so far."""

    posts: list[Post] = field(default_factory=list)
    accepted: int = 0


class TimedClient(WorkerClient):
    """The worker client, stamping when each results post left and when it was answered."""

    def __init__(self, base_url: str, token: str, worker_id: str, log: PostLog) -> None:
        super().__init__(base_url, token, worker_id)
        self._post_log = log

    async def post_results(self, results: Sequence[Result]) -> list[ResultOutcome]:
        """Post one batch (see WorkerClient) and record it."""
        sent = time.monotonic()
        outcomes = await super().post_results(results)
        answered = time.monotonic()
        accepted = [
            r.data["parcel_id"]
            for r, o in zip(results, outcomes, strict=True)
            if o.outcome == "accepted"
        ]
        self._post_log.posts.append(Post(sent, answered, accepted))
        self._post_log.accepted += len(accepted)
        return outcomes


async def scrape(task: Task, ctx: TaskContext) -> dict[str, Any]:
    """A valid ParcelResult for the task, without scraping anything."""
    return {
        "parcel_id": task.key,
        "state": "FL",
        "county": "Bench County",
        "platform": task.platform,
        "address": "1 Main St",
        "owner_name": "Jane Doe",
        "assessed_value": "125000.00",
        "tax_amount_due": "1234.50",
        "lien_status": "active",
        "auction_date": "2027-03-01",
        "source_url": f"https://{task.platform}.example/p/{task.key}",
        "scraped_at": "2026-12-03T09:00:00+00:00",
        "extra": {},
    }


# -- the feed follower: a process of its own, so the workers' event loop does not delay it --


def follow_feed(
    redis_url: str,
    feed: str,
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
    out: multiprocessing.connection.Connection,
) -> None:
    """XREAD BLOCK the feed from its start; send {job_id: (type, monotonic, wall)} at stop."""
    import redis

    client = redis.Redis.from_url(redis_url)
    seen: dict[str, tuple[str, float, float]] = {}
    last = "0-0"  # the run's prefix is fresh: the feed holds only this run's events
    client.ping()
    ready.set()
    while not stop.is_set():
        answer: Any = client.xread({feed: last}, count=1000, block=100)
        mono, wall = time.monotonic(), time.time()
        for _, entries in answer or []:
            for entry_id, fields in entries:
                last = entry_id.decode()
                kind = fields[b"type"].decode()
                if kind in ("job.completed", "job.partially_failed", "job.failed"):
                    seen.setdefault(fields[b"job"].decode(), (kind, mono, wall))
    client.close()
    out.send(seen)
    out.close()


class FeedFollower:
    """Starts and stops the follower process."""

    def __init__(self, redis_url: str, feed: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._ready = ctx.Event()
        self._stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=follow_feed, args=(redis_url, feed, self._ready, self._stop, send), daemon=True
        )

    def start(self) -> None:
        """Start following; returns once the follower reads the feed."""
        self._process.start()
        if not self._ready.wait(60):
            raise RuntimeError("the feed follower did not start")

    def stop(self) -> dict[str, tuple[str, float, float]]:
        """Stop following; what it saw."""
        self._stop.set()
        seen: dict[str, tuple[str, float, float]] = self._recv.recv()
        self._process.join(10)
        return seen


# -- paced submission (open loop, like bench/paced.py) ----------------------------------------


@dataclass
class Paced:
    """One paced phase: per request its latency from when it was due, and the span."""

    latencies_s: list[float]
    errors: list[str]
    span_s: float  # from the first due time to the last answer
    rate: float  # the offered rate

    @property
    def achieved_per_s(self) -> float:
        """Answers per second: the offered rate when every answer kept up with the schedule,
        less when answers fell behind (count / time from the first due to the last answer,
        never above the offered rate: n requests take n / rate of schedule)."""
        if not self.latencies_s:
            return 0.0
        return len(self.latencies_s) / max(self.span_s, len(self.latencies_s) / self.rate)


async def paced(
    count: int, rate: float, send: Callable[[int], Awaitable[None]], errors: list[str]
) -> Paced:
    """Call `send(i)` at start + i / rate whatever earlier calls do; time each from its due."""
    latencies: list[float] = []
    last_answer = 0.0

    async def one(i: int, due: float) -> None:
        nonlocal last_answer
        ready = max(due, time.perf_counter())  # a late timer is the client's, not the server's
        try:
            await send(i)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            return
        now = time.perf_counter()
        latencies.append(now - ready)
        last_answer = max(last_answer, now)

    start = time.perf_counter() + 0.05
    pending: list[asyncio.Task[None]] = []
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*pending)
    return Paced(latencies, errors, (last_answer or time.perf_counter()) - start, rate)


# -- resident memory of the gateway -----------------------------------------------------------


def _status_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
    return out


class RssSampler:
    """Samples VmRSS of a process every few ms in a thread; resets VmHWM at start."""

    def __init__(self, pid: int, interval_s: float = 0.005) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.before_kb = _status_kb(pid)["VmRSS"]
        self.peak_kb = self.before_kb
        self.samples = 0
        self.hwm_reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Reset the high-water mark (clear_refs 5) and start sampling."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, _status_kb(self.pid)["VmRSS"])
            self.samples += 1
            self._stop.wait(self.interval_s)

    def stop(self) -> dict[str, Any]:
        """Stop sampling; the figures in MB."""
        self._stop.set()
        self._thread.join()
        status = _status_kb(self.pid)
        peak = max(self.peak_kb, status["VmHWM"]) if self.hwm_reset else self.peak_kb
        return {
            "rss_before_mb": self.before_kb / 1024,
            "rss_after_mb": status["VmRSS"] / 1024,
            "rss_peak_sampled_mb": self.peak_kb / 1024,
            "hwm_mb": status["VmHWM"] / 1024 if self.hwm_reset else None,
            "rss_growth_mb": (peak - self.before_kb) / 1024,
            "samples": self.samples,
        }


@dataclass(frozen=True)
class Seeded:
    """A migrated database holding one completed job of `rows` items; runs copy it."""

    database: str
    job_id: str
    rows: int
    seed_s: float


async def seed(db: asyncpg.Connection, job_id: str, owner: str, rows: int) -> None:
    """One completed job with `rows` succeeded items and a parcel row for each."""
    async with db.transaction():
        await db.execute(
            "INSERT INTO jobs (id, owner, kind, audience, state, total, succeeded,"
            " cost_per_item, label, started_at, finished_at)"
            " VALUES ($1, $2, 'parcel_refresh', 'parcel', 'completed', $3, $3, 1,"
            " 'bench download', now(), now())",
            job_id,
            owner,
            rows,
        )
        await db.execute(
            "INSERT INTO parcels (parcel_id, state, county, platform, address, owner_name,"
            " assessed_value, tax_amount_due, lien_status, auction_date, source_url,"
            " scraped_at, extra, task_id, lease_id)"
            " SELECT 'dl-' || lpad(g::text, 8, '0'), 'FL', 'Bench County',"
            " (ARRAY['alpha','beta','gamma','delta'])[g % 4 + 1], g || ' Main St',"
            " 'Jane Doe', 125000.00 + g, 1234.50, 'active', DATE '2027-03-01',"
            " 'https://bench.example/p/' || g, now(), '{\"n\": 1}'::jsonb,"
            " 'seed-' || g, 'seed'"
            " FROM generate_series(0, $1 - 1) AS g",
            rows,
        )
        await db.execute(
            "INSERT INTO job_items (job_id, idx, platform, key, task_id, state, attempts,"
            " finished_at)"
            " SELECT $1, g, (ARRAY['alpha','beta','gamma','delta'])[g % 4 + 1],"
            " 'dl-' || lpad(g::text, 8, '0'), 'seed-' || g, 'succeeded', 1, now()"
            " FROM generate_series(0, $2 - 1) AS g",
            job_id,
            rows,
        )
    # Frozen and analysed: every run's copy reads clean pages (the first scan of freshly
    # loaded rows would otherwise write hint bits, in whichever side read first).
    await db.execute("VACUUM (FREEZE, ANALYZE) jobs, job_items, parcels")


def _admin_dsn(args: argparse.Namespace) -> str:
    return (
        make_url(args.database_url)
        .set(drivername="postgresql", database="postgres")
        .render_as_string(hide_password=False)
    )


def make_template(args: argparse.Namespace) -> Seeded:
    """Migrate a database and seed the download job into it, once for every run.

    Seeding 1M items and parcels takes about 45 s here, copying the database a few: each
    run starts from its own copy (`CREATE DATABASE ... TEMPLATE`), so runs stay
    independent and the full benchmark stays within minutes."""
    tag = uuid.uuid4().hex[:10]
    database = f"bench_jobs_tpl_{tag}"
    url = make_url(args.database_url).set(database=database)
    asyncio.run(_admin(args, f'CREATE DATABASE "{database}"'))
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url.render_as_string(hide_password=False),
        REDIS_URL=args.redis_url,
        REDIS_KEY_PREFIX=f"benchjobs:{tag}:",
        ENVIRONMENT="development",
        LOG_LEVEL="warning",
    )
    job_id = "job_" + secrets.token_hex(12)

    async def fill() -> None:
        db = await asyncpg.connect(
            url.set(drivername="postgresql").render_as_string(hide_password=False)
        )
        try:
            await seed(db, job_id, "nobody", args.download_rows)
        finally:
            await db.close()

    try:
        subprocess.run(
            [sys.executable, "-m", "gateway", "migrate"],
            env=env,
            cwd=REPO_DIR,
            check=True,
            capture_output=True,
            timeout=300,
        )
        print(f"seeding {args.download_rows:,} rows for the download", file=sys.stderr)
        started = time.monotonic()
        asyncio.run(fill())
    except BaseException:
        asyncio.run(_admin(args, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        raise
    return Seeded(database, job_id, args.download_rows, time.monotonic() - started)


async def _admin(args: argparse.Namespace, statement: str) -> None:
    admin = await asyncpg.connect(_admin_dsn(args))
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


# -- one run -------------------------------------------------------------------------------------


class Run:
    """One run on a fresh database and key prefix."""

    def __init__(self, args: argparse.Namespace, run: int, seeded: Seeded | None) -> None:
        self.args = args
        self.run = run
        self.seeded = seeded
        self.tag = uuid.uuid4().hex[:10]
        self.database = f"bench_jobs_{self.tag}"
        self.database_url = (
            make_url(args.database_url)
            .set(database=self.database)
            .render_as_string(hide_password=False)
        )
        self.dsn = (
            make_url(self.database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self.admin_dsn = (
            make_url(args.database_url)
            .set(drivername="postgresql", database="postgres")
            .render_as_string(hide_password=False)
        )
        self.prefix = f"benchjobs:{self.tag}:"
        self.log = PostLog()
        self.gateway: Server  # set once started

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
            JOB_PLATFORMS=json.dumps({"parcel": list(PLATFORMS)}),
        )
        return env

    @staticmethod
    def cli(env: dict[str, str], *argv: str) -> str:
        """Run the gateway CLI; the secret it prints is its last line."""
        out = subprocess.run(
            [sys.executable, "-m", "gateway", *argv],
            env=env,
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return out.stdout.strip().splitlines()[-1]

    async def execute(self) -> dict[str, Any]:
        """Create the database, run the gateway, measure, clean up."""
        admin = await asyncpg.connect(self.admin_dsn)
        copied_s = None
        if self.seeded is None:
            await admin.execute(f'CREATE DATABASE "{self.database}"')
        else:
            started = time.monotonic()
            await admin.execute(
                f'CREATE DATABASE "{self.database}" TEMPLATE "{self.seeded.database}"'
                " STRATEGY FILE_COPY"
            )
            copied_s = time.monotonic() - started
        try:
            with tempfile.TemporaryDirectory(prefix="gw-bench-") as data_dir:
                ports = free_ports(3)
                env = self.env(ports, data_dir)
                gateway = Server(
                    name="gateway",
                    argv=[sys.executable, "-m", "gateway", "serve"],
                    env=env,
                    base_url=f"http://127.0.0.1:{ports[0]}",
                    ready_path="/ready",
                    log_path=RESULTS_DIR / "logs" / f"jobs_gateway_{self.run}.log",
                    cwd=REPO_DIR,
                )
                gateway.start()
                self.gateway = gateway
                try:
                    gateway.wait_ready(120)
                    key = self.cli(
                        env, "keys", "create", "--name", f"bench-{self.tag}", "--tier", "enterprise"
                    )
                    tokens = {
                        role: self.cli(
                            env,
                            "tokens",
                            "create",
                            "--audience",
                            "parcel",
                            "--name",
                            f"bench-{role}-{self.tag}",
                            "--role",
                            role,
                        )
                        for role in ("producer", "worker")
                    }
                    result = await self.measure(
                        gateway, f"http://127.0.0.1:{ports[1]}", key, tokens
                    )
                finally:
                    result_exit = gateway.stop(grace_s=15)
                result["gateway_exit_code"] = result_exit
                result["database_copy_s"] = copied_s
                return result
        finally:
            redis = Redis.from_url(self.args.redis_url)
            keys = [k async for k in redis.scan_iter(match=self.prefix + "*", count=1000)]
            for i in range(0, len(keys), 1000):
                await redis.delete(*keys[i : i + 1000])
            await redis.aclose()
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            await admin.close()

    async def measure(
        self, gateway: Server, internal_url: str, key: str, tokens: dict[str, str]
    ) -> dict[str, Any]:
        """Both submission phases with the workers running, then the download."""
        out: dict[str, Any] = {}
        db = await asyncpg.connect(self.dsn)
        limits = httpx.Limits(max_connections=64)
        public = httpx.AsyncClient(base_url=gateway.base_url, limits=limits, timeout=120)
        internal = httpx.AsyncClient(base_url=internal_url, limits=limits, timeout=120)
        workers = [
            Worker(
                TimedClient(internal_url, tokens["worker"], f"bench-{i}", self.log),
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
        running = [asyncio.create_task(w.run(stop)) for w in workers]
        try:
            phases = [self.jobs_phase, self.tasks_phase]
            if self.run % 2 == 0:
                phases.reverse()
            for phase in phases:
                out.update(await phase(public, internal, db, key, tokens["producer"], running))
        finally:
            stop.set()
            await asyncio.gather(*running, return_exceptions=True)
            await asyncio.gather(*(w.client.aclose() for w in workers))
        try:
            if self.seeded is not None:
                out["download"] = await self.download_phase(gateway, public, db, key, self.seeded)
        finally:
            await public.aclose()
            await internal.aclose()
            await db.close()
        return out

    async def _drained(self, target: int, running: list[asyncio.Task[Any]]) -> None:
        """Wait until the workers have had `target` results accepted in all."""
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while self.log.accepted < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.log.accepted} of {target} results accepted")
            if any(r.done() for r in running):
                for r in running:
                    if r.done() and r.exception() is not None:
                        raise RuntimeError("a worker stopped") from r.exception()
                raise RuntimeError("a worker stopped")
            await asyncio.sleep(0.02)

    async def jobs_phase(
        self,
        public: httpx.AsyncClient,
        internal: httpx.AsyncClient,
        db: asyncpg.Connection,
        key: str,
        producer: str,
        running: list[asyncio.Task[Any]],
    ) -> dict[str, Any]:
        """Submit jobs at the paced rate; follow the feed until every job finished."""
        n, size = self.args.jobs, self.args.items
        keys = [[f"j{self.tag}-{j:05d}-{i:07d}" for i in range(size)] for j in range(n)]
        bodies = [
            json.dumps(
                {
                    "kind": "parcel_refresh",
                    "label": f"bench {j}",
                    "items": [
                        {"platform": PLATFORMS[i % len(PLATFORMS)], "parcel_id": k}
                        for i, k in enumerate(keys[j])
                    ],
                }
            ).encode()
            for j in range(n)
        ]
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        job_ids: dict[int, str] = {}

        sent_at: dict[str, tuple[float, float]] = {}  # job id: wall clock sent, answered

        async def submit(j: int) -> None:
            sent = time.time()
            response = await public.post("/v1/jobs", content=bodies[j], headers=headers)
            answered = time.time()
            if response.status_code != 201:
                raise RuntimeError(f"POST /v1/jobs: {response.status_code} {response.text[:300]}")
            doc = response.json()
            if doc["estimate"]["items"] != size:
                raise RuntimeError(f"estimate {doc['estimate']} for {size} items")
            job_ids[j] = doc["id"]
            sent_at[doc["id"]] = (sent, answered)

        print(f"  jobs: {n} x {size} parcels at {self.args.rate:g}/s", file=sys.stderr)
        follower = FeedFollower(self.args.redis_url, f"{self.prefix}jobs:feed")
        follower.start()
        profiler = None
        if self.args.profile and self.run == 1:
            profiler = start_py_spy(self.gateway.pid, RESULTS_DIR / "jobs_gateway.pyspy.txt")
        metrics_before = (await public.get("/metrics")).text
        cpu_before = self.gateway.cpu_seconds()
        base_accepted = self.log.accepted
        first_post = len(self.log.posts)
        started = time.monotonic()
        try:
            errors: list[str] = []
            result = await paced(n, self.args.rate, submit, errors)
            await self._drained(base_accepted + size * len(job_ids), running)
            finished = await self._all_finished(db, list(job_ids.values()))
        finally:
            seen = follower.stop()
            if profiler is not None:
                stop_py_spy(profiler)
        elapsed = time.monotonic() - started
        cpu = self.gateway.cpu_seconds() - cpu_before
        metrics_after = (await public.get("/metrics")).text
        posts = self.log.posts[first_post:]
        lag = await self._lags(db, keys, job_ids, posts, seen)
        steps = await self._submit_steps(db, sent_at)
        late = await self._late_items(db, sent_at)
        return {
            "jobs": {
                "submitted": len(job_ids),
                "errors": errors[:10],
                "error_count": len(errors),
                "submissions_per_s": result.achieved_per_s,
                "latencies_ms": [1000 * x for x in result.latencies_s],
                "p50_ms": 1000 * percentile(result.latencies_s, 0.5),
                "p99_ms": 1000 * percentile(result.latencies_s, 0.99),
                "server": self._server(metrics_before, metrics_after, "/v1/jobs"),
                "elapsed_s": elapsed,
                "items_per_s_end_to_end": size * len(job_ids) / elapsed,
                "gateway_cpu_s": cpu,
                "finished": finished,
                "steps_ms": steps,
                "late_items": late,
            },
            "lag": lag,
        }

    @staticmethod
    async def _submit_steps(
        db: asyncpg.Connection, sent_at: dict[str, tuple[float, float]]
    ) -> dict[str, list[float]]:
        """Where a submission's time went, from PostgreSQL's transaction start times: sent
        -> Tx1 start (jobs.created_at), -> Tx2 start (job.queued event), -> answer."""
        rows = await db.fetch(
            "SELECT j.id, j.created_at, e.created_at AS queued_at FROM jobs j"
            " JOIN job_events e ON e.job_id = j.id AND e.type = 'job.queued'"
            " WHERE j.id = ANY($1::text[])",
            list(sent_at),
        )
        steps: dict[str, list[float]] = {"to_tx1": [], "tx1_attach": [], "tx2_answer": []}
        for r in rows:
            sent, answered = sent_at[r["id"]]
            tx1, tx2 = r["created_at"].timestamp(), r["queued_at"].timestamp()
            steps["to_tx1"].append(1000 * (tx1 - sent))
            steps["tx1_attach"].append(1000 * (tx2 - tx1))
            steps["tx2_answer"].append(1000 * (answered - tx2))
        return steps

    @staticmethod
    async def _late_items(
        db: asyncpg.Connection, sent_at: dict[str, tuple[float, float]]
    ) -> dict[str, int]:
        """Items that left `pending` more than 1 s after their result was stored (so not by
        the results hook: by the upkeep reconcile), and how many of those results were
        stored before their job's `job.queued` transaction (Tx2, which links items to
        tasks) began, and before the submission was answered (Tx2 committed by then)."""
        ids = list(sent_at)
        answered = [sent_at[i][1] for i in ids]
        row = await db.fetchrow(
            "SELECT count(*) FILTER (WHERE late) AS late,"
            " count(*) FILTER (WHERE late AND h.accepted_at < e.created_at) AS before_tx2,"
            " count(*) FILTER (WHERE late AND h.accepted_at < to_timestamp(a.answered))"
            "   AS before_answer"
            " FROM (SELECT i.*, i.finished_at > h0.accepted_at + interval '1 second' AS late,"
            "       h0.accepted_at FROM job_items i"
            "       JOIN parcel_history h0 ON h0.parcel_id = i.key"
            "       WHERE i.job_id = ANY($1::text[])) AS h"
            " JOIN job_events e ON e.job_id = h.job_id AND e.type = 'job.queued'"
            " JOIN unnest($1::text[], $2::float8[]) AS a(job_id, answered)"
            "   ON a.job_id = h.job_id",
            ids,
            answered,
        )
        return {
            "late": row["late"],
            "stored_before_tx2": row["before_tx2"],
            "stored_before_answer": row["before_answer"],
        }

    async def _all_finished(self, db: asyncpg.Connection, ids: list[str]) -> dict[str, int]:
        """Wait until every job is in a terminal state; count them by state."""
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        while True:
            rows = await db.fetch(
                "SELECT state, count(*) AS n FROM jobs WHERE id = ANY($1::text[]) GROUP BY state",
                ids,
            )
            states = {r["state"]: r["n"] for r in rows}
            if sum(states.get(s, 0) for s in TERMINAL) >= len(ids):
                return states
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs not finished after {PHASE_TIMEOUT_S:g}s: {states}")
            await asyncio.sleep(0.05)

    async def _lags(
        self,
        db: asyncpg.Connection,
        keys: list[list[str]],
        job_ids: dict[int, str],
        posts: list[Post],
        seen: dict[str, tuple[str, float, float]],
    ) -> dict[str, Any]:
        """Per job: feed event seen - last results answer, and - the completing tx's start."""
        first_post: dict[str, Post] = {}
        for post in posts:
            for k in post.accepted:
                first_post.setdefault(k, post)
        finished_at = {
            r["id"]: r["finished_at"].timestamp()
            for r in await db.fetch(
                "SELECT id, finished_at FROM jobs WHERE id = ANY($1::text[])",
                list(job_ids.values()),
            )
            if r["finished_at"] is not None
        }
        from_answer: list[float] = []
        from_tx: list[float] = []
        missing = 0
        for j, job_id in job_ids.items():
            event = seen.get(job_id)
            carried = [first_post.get(k) for k in keys[j]]
            if event is None or event[0] != "job.completed" or any(p is None for p in carried):
                missing += 1
                continue
            last_answer = max(p.answered for p in carried if p is not None)
            from_answer.append(event[1] - last_answer)
            if job_id in finished_at:
                from_tx.append(event[2] - finished_at[job_id])
        round_trips = [p.answered - p.sent for p in posts]
        return {
            "from_answer_ms": [1000 * x for x in from_answer],
            "from_tx_start_ms": [1000 * x for x in from_tx],
            "results_round_trip_ms": [1000 * x for x in round_trips],
            "jobs_without_completed_event": missing,
        }

    async def tasks_phase(
        self,
        public: httpx.AsyncClient,
        internal: httpx.AsyncClient,
        db: asyncpg.Connection,
        key: str,
        producer: str,
        running: list[asyncio.Task[Any]],
    ) -> dict[str, Any]:
        """Baseline: the same tasks through `POST /internal/tasks`, same size and rate."""
        n, size = self.args.jobs, self.args.items
        bodies = [
            json.dumps(
                {
                    "tasks": [
                        {
                            "platform": PLATFORMS[i % len(PLATFORMS)],
                            "key": f"t{self.tag}-{j:05d}-{i:07d}",
                        }
                        for i in range(size)
                    ]
                }
            ).encode()
            for j in range(n)
        ]
        headers = {"X-Worker-Token": producer, "Content-Type": "application/json"}
        enqueued = 0

        async def send(j: int) -> None:
            nonlocal enqueued
            response = await internal.post("/internal/tasks", content=bodies[j], headers=headers)
            if response.status_code >= 300:
                raise RuntimeError(
                    f"POST /internal/tasks: {response.status_code} {response.text[:300]}"
                )
            enqueued += response.json()["enqueued"]

        print(f"  tasks: {n} x {size} tasks at {self.args.rate:g}/s", file=sys.stderr)
        metrics_before = (await internal.get("/metrics")).text
        cpu_before = self.gateway.cpu_seconds()
        base_accepted = self.log.accepted
        started = time.monotonic()
        errors: list[str] = []
        result = await paced(n, self.args.rate, send, errors)
        await self._drained(base_accepted + enqueued, running)
        elapsed = time.monotonic() - started
        cpu = self.gateway.cpu_seconds() - cpu_before
        metrics_after = (await internal.get("/metrics")).text
        return {
            "tasks": {
                "requests": len(result.latencies_s),
                "enqueued": enqueued,
                "errors": errors[:10],
                "error_count": len(errors),
                "requests_per_s": result.achieved_per_s,
                "latencies_ms": [1000 * x for x in result.latencies_s],
                "p50_ms": 1000 * percentile(result.latencies_s, 0.5),
                "p99_ms": 1000 * percentile(result.latencies_s, 0.99),
                "server": self._server(metrics_before, metrics_after, "/internal/tasks"),
                "elapsed_s": elapsed,
                "items_per_s_end_to_end": enqueued / elapsed,
                "gateway_cpu_s": cpu,
            }
        }

    @staticmethod
    def _server(before: str, after: str, route: str) -> dict[str, float]:
        """p50/p99 of a route from the gateway's request histogram (coarse: buckets)."""
        b, a = route_buckets(before, route, "POST"), route_buckets(after, route, "POST")
        return {
            "p50_ms": 1000 * _histogram_quantile(b, a, 0.5),
            "p99_ms": 1000 * _histogram_quantile(b, a, 0.99),
        }

    async def download_phase(
        self,
        gateway: Server,
        public: httpx.AsyncClient,
        db: asyncpg.Connection,
        key: str,
        seeded: Seeded,
    ) -> dict[str, Any]:
        """Download the seeded job through the gateway and straight from COPY (alternating)."""
        from gateway.jobs.repository.downloads import csv_query

        # The template's job belongs to nobody yet: give it to this run's key (its limit
        # key is api_key:<key id>, and keys read tlk_<key id>_<secret>).
        owner = "api_key:" + key.split("_")[1]
        await db.execute("UPDATE jobs SET owner = $1 WHERE id = $2", owner, seeded.job_id)
        query = csv_query("parcel")
        # Warm-up, not timed: the run's database is a fresh file copy, so the first read
        # would pay for the disk whichever side went first.
        warm_started = time.monotonic()
        await db.fetchval(f"SELECT count(*) FROM ({query}) AS q", seeded.job_id)  # noqa: S608
        warm_s = time.monotonic() - warm_started
        order = ["gateway", "direct"] if self.run % 2 else ["direct", "gateway"]
        out: dict[str, Any] = {"rows": seeded.rows, "order": order, "warm_up_s": warm_s}
        for side in order:
            if side == "gateway":
                out["gateway"] = await self.download_gateway(gateway, public, key, seeded.job_id)
            else:
                out["direct"] = await self.download_direct(query, seeded.job_id)
            print(f"  download {side}: {out[side]['rows_per_s']:.0f} rows/s", file=sys.stderr)
        return out

    async def download_gateway(
        self, gateway: Server, public: httpx.AsyncClient, key: str, job_id: str
    ) -> dict[str, Any]:
        """Ask for a signed link, stream it without auth, count rows; sample the RSS."""
        response = await public.post(
            f"/v1/jobs/{job_id}/download", json={"format": "csv"}, headers={"X-API-Key": key}
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"POST download: {response.status_code} {response.text[:300]}")
        url = urljoin(gateway.base_url + "/", response.json()["url"])
        sampler = RssSampler(gateway.pid)
        lines = 0
        size = 0
        cpu_before = gateway.cpu_seconds()
        client_cpu = time.process_time()
        sampler.start()
        started = time.perf_counter()
        try:
            async with httpx.AsyncClient(timeout=300) as browser, browser.stream("GET", url) as r:
                if r.status_code != 200:
                    raise RuntimeError(f"GET download: {r.status_code} {(await r.aread())[:300]!r}")
                async for chunk in r.aiter_raw():
                    lines += chunk.count(b"\n")
                    size += len(chunk)
            elapsed = time.perf_counter() - started
        finally:
            memory = sampler.stop()
        rows = lines - 1  # the header line
        return {
            "rows": rows,
            "bytes": size,
            "elapsed_s": elapsed,
            "rows_per_s": rows / elapsed,
            "gateway_cpu_s": gateway.cpu_seconds() - cpu_before,
            "client_cpu_s": time.process_time() - client_cpu,
            **memory,
        }

    async def download_direct(self, query: str, job_id: str) -> dict[str, Any]:
        """The gateway's export statement, `COPY ... TO STDOUT` by asyncpg in this process."""
        conn = await asyncpg.connect(self.dsn)
        lines = 0
        size = 0

        async def output(chunk: bytes) -> None:
            nonlocal lines, size
            lines += chunk.count(b"\n")
            size += len(chunk)

        try:
            started = time.perf_counter()
            async with conn.transaction(readonly=True):
                await conn.execute("SET LOCAL TimeZone = 'UTC'")
                await conn.copy_from_query(query, job_id, output=output, format="csv", header=True)
            elapsed = time.perf_counter() - started
        finally:
            await conn.close()
        rows = lines - 1
        return {"rows": rows, "bytes": size, "elapsed_s": elapsed, "rows_per_s": rows / elapsed}


# -- the report --------------------------------------------------------------------------------


def _fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:,.{digits}f}"  # NaN -> dash


def report(args: argparse.Namespace, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Print the table; return the summary."""

    def med(path: Callable[[dict[str, Any]], float]) -> float:
        values = [path(r) for r in runs]
        return statistics.median(values) if values else float("nan")

    def every(path: Callable[[dict[str, Any]], list[float]]) -> list[float]:
        return [x for r in runs for x in path(r)]

    subs = med(lambda r: r["jobs"]["submissions_per_s"])
    reqs = med(lambda r: r["tasks"]["requests_per_s"])
    job_lat = every(lambda r: r["jobs"]["latencies_ms"])
    task_lat = every(lambda r: r["tasks"]["latencies_ms"])
    lag_answer = every(lambda r: r["lag"]["from_answer_ms"])
    lag_tx = every(lambda r: r["lag"]["from_tx_start_ms"])
    rtt = every(lambda r: r["lag"]["results_round_trip_ms"])
    summary: dict[str, Any] = {
        "submissions_per_s": subs,
        "task_batches_per_s": reqs,
        "submission_ratio": subs / reqs,
        "submit_p50_ms": percentile(job_lat, 0.5),
        "submit_p99_ms": percentile(job_lat, 0.99),
        "tasks_p50_ms": percentile(task_lat, 0.5),
        "tasks_p99_ms": percentile(task_lat, 0.99),
        "items_per_s_jobs": med(lambda r: r["jobs"]["items_per_s_end_to_end"]),
        "items_per_s_tasks": med(lambda r: r["tasks"]["items_per_s_end_to_end"]),
        "cpu_per_1000_jobs": med(
            lambda r: (
                1000 * r["jobs"]["gateway_cpu_s"] / max(1, r["jobs"]["submitted"] * args.items)
            )
        ),
        "cpu_per_1000_tasks": med(
            lambda r: 1000 * r["tasks"]["gateway_cpu_s"] / max(1, r["tasks"]["enqueued"])
        ),
        "lag_answer_p50_ms": percentile(lag_answer, 0.5),
        "lag_answer_p99_ms": percentile(lag_answer, 0.99),
        "lag_tx_p50_ms": percentile(lag_tx, 0.5),
        "lag_tx_p99_ms": percentile(lag_tx, 0.99),
        "results_rtt_p50_ms": percentile(rtt, 0.5),
        "results_rtt_p99_ms": percentile(rtt, 0.99),
        "lag_jobs": len(lag_answer),
        "lag_over_1s": sum(1 for x in lag_answer if x > 1000),
        "late_items": sum(r["jobs"]["late_items"]["late"] for r in runs),
        "late_items_stored_before_tx2": sum(
            r["jobs"]["late_items"]["stored_before_tx2"] for r in runs
        ),
        "late_items_stored_before_answer": sum(
            r["jobs"]["late_items"]["stored_before_answer"] for r in runs
        ),
    }
    downloads = [r["download"] for r in runs if "download" in r]
    if downloads:
        summary.update(
            download_rows_per_s=statistics.median(d["gateway"]["rows_per_s"] for d in downloads),
            direct_rows_per_s=statistics.median(d["direct"]["rows_per_s"] for d in downloads),
            rss_growth_mb=statistics.median(d["gateway"]["rss_growth_mb"] for d in downloads),
            rss_growth_max_mb=max(d["gateway"]["rss_growth_mb"] for d in downloads),
            rss_before_mb=statistics.median(d["gateway"]["rss_before_mb"] for d in downloads),
            download_gateway_cpu_s=statistics.median(
                d["gateway"]["gateway_cpu_s"] for d in downloads
            ),
        )
        summary["download_ratio"] = summary["download_rows_per_s"] / summary["direct_rows_per_s"]

    s = summary
    print(
        f"\nclient jobs: {args.runs} runs; {args.jobs} jobs x {args.items} parcels at "
        f"{args.rate:g}/s, {args.workers} workers; download {args.download_rows:,} rows\n"
    )
    head = f"{'':44} {'figure':>16} {'baseline':>16} {'ratio':>7}"
    print(head)
    print("-" * len(head))

    def row(label: str, figure: str, baseline: str, ratio: str = "") -> None:
        print(f"{label:44} {figure:>16} {baseline:>16} {ratio:>7}")

    row(
        "submissions/s (jobs | task batches)",
        _fmt(subs, 2),
        _fmt(reqs, 2),
        _fmt(s["submission_ratio"], 2),
    )
    row(
        "submit p50/p99 ms (jobs | task batches)",
        f"{_fmt(s['submit_p50_ms'])} / {_fmt(s['submit_p99_ms'])}",
        f"{_fmt(s['tasks_p50_ms'])} / {_fmt(s['tasks_p99_ms'])}",
        _fmt(s["submit_p99_ms"] / s["tasks_p99_ms"], 2),
    )
    server: dict[str, float] = {}
    for side in ("jobs", "tasks"):
        for q in ("p50_ms", "p99_ms"):
            server[f"{side}_{q}"] = statistics.median(r[side]["server"][q] for r in runs)
    summary["server_ms"] = server
    row(
        "  server side p50/p99 ms (histogram, coarse)",
        f"{_fmt(server['jobs_p50_ms'])} / {_fmt(server['jobs_p99_ms'])}",
        f"{_fmt(server['tasks_p50_ms'])} / {_fmt(server['tasks_p99_ms'])}",
    )
    steps = {
        k: percentile([x for r in runs for x in r["jobs"]["steps_ms"][k]], 0.5)
        for k in ("to_tx1", "tx1_attach", "tx2_answer")
    }
    summary["submit_steps_p50_ms"] = steps
    print(
        f"{'  submit p50 ms: to Tx1 / Tx1+attach / Tx2+answer':44} "
        f"{_fmt(steps['to_tx1'])} / {_fmt(steps['tx1_attach'])} / {_fmt(steps['tx2_answer'])}"
    )
    row(
        "items/s end to end (jobs | tasks)",
        _fmt(s["items_per_s_jobs"], 0),
        _fmt(s["items_per_s_tasks"], 0),
        _fmt(s["items_per_s_jobs"] / s["items_per_s_tasks"], 2),
    )
    row(
        "gateway CPU s per 1,000 items (jobs | tasks)",
        _fmt(s["cpu_per_1000_jobs"], 2),
        _fmt(s["cpu_per_1000_tasks"], 2),
        _fmt(s["cpu_per_1000_jobs"] / s["cpu_per_1000_tasks"], 2),
    )
    row(
        "completion lag p50/p99 ms, from last answer",
        f"{_fmt(s['lag_answer_p50_ms'])} / {_fmt(s['lag_answer_p99_ms'])}",
        f"{_fmt(s['results_rtt_p50_ms'])} / {_fmt(s['results_rtt_p99_ms'])}",
        _fmt(s["lag_answer_p99_ms"] / s["results_rtt_p99_ms"], 2),
    )
    row(
        "completion lag p50/p99 ms, from tx start",
        f"{_fmt(s['lag_tx_p50_ms'])} / {_fmt(s['lag_tx_p99_ms'])}",
        "(results RTT)",
        _fmt(s["lag_tx_p99_ms"] / s["results_rtt_p99_ms"], 2),
    )
    if downloads:
        row(
            "download rows/s (gateway | COPY direct)",
            _fmt(s["download_rows_per_s"], 0),
            _fmt(s["direct_rows_per_s"], 0),
            _fmt(s["download_ratio"], 2),
        )
        row(
            "gateway RSS growth MB, median (max)",
            f"{_fmt(s['rss_growth_mb'])} ({_fmt(s['rss_growth_max_mb'])})",
            f"of {_fmt(s['rss_before_mb'])}",
        )
    print(
        f"\nlag over {s['lag_jobs']} jobs, {s['lag_over_1s']} of them completed more than 1 s "
        "after their last item was acknowledged;\nlag baseline = POST /internal/results round "
        "trip during the jobs phase"
    )
    print(
        f"items moved more than 1 s after their result was stored: {s['late_items']} "
        f"({s['late_items_stored_before_tx2']} stored before their job's Tx2 began, "
        f"{s['late_items_stored_before_answer']} before its submission was answered)"
    )
    return summary


def failures(runs: list[dict[str, Any]]) -> list[str]:
    """What went wrong in any run (empty when everything checked out)."""
    bad: list[str] = []
    for i, r in enumerate(runs, 1):
        jobs = r["jobs"]
        if jobs["error_count"] or r["tasks"]["error_count"]:
            bad.append(f"run {i}: failed requests {jobs['errors'] or r['tasks']['errors']}")
        if jobs["finished"].get("completed", 0) != jobs["submitted"]:
            bad.append(f"run {i}: jobs by state {jobs['finished']}")
        if r["lag"]["jobs_without_completed_event"]:
            bad.append(f"run {i}: {r['lag']['jobs_without_completed_event']} jobs without event")
        if "download" in r:
            for side in ("gateway", "direct"):
                got = r["download"][side]["rows"]
                if got != r["download"]["rows"]:
                    bad.append(f"run {i}: {side} download gave {got} rows")
        if r["gateway_exit_code"] != 0:
            bad.append(f"run {i}: gateway exited {r['gateway_exit_code']}")
    return bad


def main() -> int:
    """Run the benchmark; exit 1 when a check fails."""
    args = parse_args()
    (RESULTS_DIR / "logs").mkdir(parents=True, exist_ok=True)
    # The tree measured is the one at the start (a commit made during the run is not in it).
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True
    ).stdout.strip()
    load = os.getloadavg()
    if load[0] > (os.cpu_count() or 1) / 2:
        print(f"warning: load average {load[0]:.1f} before the start", file=sys.stderr)
    runs: list[dict[str, Any]] = []
    seeded = make_template(args) if args.download_rows else None
    try:
        for run in range(1, args.runs + 1):
            print(f"run {run}/{args.runs}", file=sys.stderr, flush=True)
            runs.append(asyncio.run(Run(args, run, seeded).execute()))
            r = runs[-1]
            print(
                f"  {r['jobs']['submissions_per_s']:.2f} jobs/s, "
                f"{r['tasks']['requests_per_s']:.2f} task batches/s",
                file=sys.stderr,
                flush=True,
            )
    finally:
        if seeded is not None:
            asyncio.run(_admin(args, f'DROP DATABASE IF EXISTS "{seeded.database}" WITH (FORCE)'))
    summary = report(args, runs)
    bad = failures(runs)
    for line in bad:
        print(f"FAILED: {line}")
    record = {
        "parameters": vars(args),
        "commit": commit,
        "load_average_before": load,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "seed_s": seeded.seed_s if seeded else None,
        "summary": summary,
        "failures": bad,
        "runs": runs,
    }
    (RESULTS_DIR / "jobs.json").write_text(json.dumps(record, indent=2, default=str))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
