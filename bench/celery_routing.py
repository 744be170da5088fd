"""Celery routing benchmark: the same workload through the native path, the Celery path
(RabbitMQ broker) and a 50% split, in one run, on the local Redis, PostgreSQL, RabbitMQ.

    .venv/bin/python bench/celery_routing.py      # --runs 3 --tasks 5000 --workers 20

Per scenario and run: a fresh PostgreSQL database and Redis key prefix, queues of its
own on RabbitMQ (deleted after); the real gateway (`python -m gateway serve`) with one
route, `parcel/*`, at the scenario's share (0, 1 or 0.5); the consumers started and
ready *before* the clock: W simulated HTTP workers (the repository's worker client, in
this process; native and split) and one `celery worker` process running
examples/celery_worker.py (`--pool threads`, C threads; Celery and split). The clock
runs from the first enqueue (N parcel tasks over HTTP, batches of 1000) until
PostgreSQL holds a history row for every task (results committed), so the Celery
figure includes the dispatcher's publish, the broker, the worker, the results queue and
the gateway's batched results consumer. Then PostgreSQL is checked: each task exactly
once (lost = 0, duplicate completions = 0), and the realised split is read from
`gateway_tasks_routed_total`. Scenarios alternate within a run (native, celery, split),
medians across runs; table on stdout with the ratio to the native median, the full
record in bench/results/celery_routing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from kombu import Connection, Exchange, Queue
from redis.asyncio import Redis

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path[:0] = [str(REPO_DIR), str(BENCH_DIR)]

from servers import Server, free_ports  # noqa: E402
from worker_plane import GatewayRun  # noqa: E402

from taxlien_worker import Task, TaskContext, Worker, WorkerClient  # noqa: E402

RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
PLATFORMS = ("alpha", "beta", "gamma", "delta")
SCENARIOS = {"native": 0.0, "celery": 1.0, "split": 0.5}
RUN_TIMEOUT_S = 600.0


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=20, help="simulated HTTP workers")
    parser.add_argument("--celery-threads", type=int, default=20, help="Celery worker threads")
    parser.add_argument("--lease-batch", type=int, default=100)
    parser.add_argument("--result-batch", type=int, default=100)
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--broker-url", default=RABBITMQ_URL)
    parser.add_argument("--scenarios", default="native,celery,split")
    args = parser.parse_args()
    if args.runs < 1 or args.tasks < 1 or args.workers < 1 or args.celery_threads < 1:
        parser.error("--runs, --tasks, --workers and --celery-threads must be positive")
    return args


def parcel(task: Task) -> dict[str, Any]:
    """A valid ParcelResult for a task (the HTTP workers' fake scrape)."""
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


def _routed(metrics: str) -> dict[str, float]:
    out = {"native": 0.0, "celery": 0.0}
    for line in metrics.splitlines():
        if line.startswith("gateway_tasks_routed_total{"):
            backend = re.search(r'backend="(\w+)"', line)
            if backend and backend.group(1) in out:
                out[backend.group(1)] += float(line.rsplit(" ", 1)[1])
    return out


class RoutingRun(GatewayRun):
    """One scenario: the gateway with a route at `share`, consumers, N tasks."""

    def __init__(self, args: argparse.Namespace, run: int, scenario: str) -> None:
        super().__init__(args, run)
        self.scenario = scenario
        self.share = SCENARIOS[scenario]
        self.route_queue = f"bench{self.tag}.parcels"
        self.results_queue = f"bench{self.tag}.results"

    def env(self, ports: list[int], data_dir: str) -> dict[str, str]:
        """The gateway's environment, with the route at this scenario's share."""
        env = super().env(ports, data_dir)
        route = {
            "audience": "parcel",
            "platform": "*",
            "share": self.share,
            "task": "scrape_parcel",
            "queue": self.route_queue,
        }
        env.update(
            CELERY_BROKER_URL=self.args.broker_url,
            CELERY_ROUTES=json.dumps([route]),
            CELERY_RESULTS_QUEUE=self.results_queue,
        )
        return env

    async def execute(self) -> dict[str, Any]:
        """As the worker-plane run, then delete this scenario's RabbitMQ queues."""
        try:
            return await self._execute()
        finally:
            self.delete_queues()

    async def _execute(self) -> dict[str, Any]:
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
                    log_path=RESULTS_DIR / "logs" / f"celery_routing_{self.scenario}.log",
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
        """Enqueue every task in batches of 1000 (4 in flight); returns the time it took.
        `delay_s: 0` makes the example Celery task a no-op like the HTTP workers' scrape."""
        started = time.perf_counter()
        limit = asyncio.Semaphore(4)

        async def send(start: int) -> None:
            batch = [
                {
                    "platform": PLATFORMS[i % len(PLATFORMS)],
                    "key": f"p-{i:07d}",
                    "payload": {"n": i, "delay_s": 0},
                }
                for i in range(start, min(start + 1000, self.args.tasks))
            ]
            async with limit:
                response = await http.post(
                    "/internal/tasks", json={"tasks": batch}, headers={"X-Worker-Token": producer}
                )
                response.raise_for_status()

        await asyncio.gather(*(send(s) for s in range(0, self.args.tasks, 1000)))
        return time.perf_counter() - started

    def start_celery(self) -> subprocess.Popen[bytes]:
        """`celery worker` on the route's queue, ready when it answers a ping."""
        env = dict(os.environ)
        env.update(CELERY_BROKER_URL=self.args.broker_url, PYTHONPATH=str(REPO_DIR))
        log = (RESULTS_DIR / "logs" / f"celery_routing_worker_{self.scenario}.log").open("wb")
        name = f"bench{self.tag}@%h"
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "examples.celery_worker",
                "worker",
                "-Q",
                self.route_queue,
                "-P",
                "threads",
                "-c",
                str(self.args.celery_threads),
                "-n",
                name,
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "WARNING",
            ],
            env=env,
            cwd=REPO_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        from celery import Celery

        app = Celery("bench_ping", broker=self.args.broker_url, set_as_current=False)
        try:
            deadline = time.monotonic() + 120
            wanted = name.replace("%h", os.uname().nodename)
            while time.monotonic() < deadline:
                if worker.poll() is not None:
                    raise RuntimeError(f"celery worker exited with {worker.returncode}")
                replies = app.control.inspect(timeout=1.0, destination=[wanted]).ping() or {}
                if replies:
                    return worker
            raise RuntimeError("the celery worker did not answer a ping")
        finally:
            app.close()

    async def measure(self, gateway: Server, producer: str, token: str) -> dict[str, Any]:
        """Consumers up, then the clock: enqueue N, wait until every result committed."""
        celery = self.start_celery() if self.share > 0 else None
        stop = asyncio.Event()
        workers: list[Worker] = []
        if self.share < 1:

            async def scrape(task: Task, ctx: TaskContext) -> dict[str, Any]:
                return parcel(task)

            workers = [
                Worker(
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
        running = [asyncio.create_task(w.run(stop)) for w in workers]
        db = await asyncpg.connect(self.plain_database_url())
        try:
            limits = httpx.Limits(max_connections=16)
            async with httpx.AsyncClient(
                base_url=gateway.base_url, limits=limits, timeout=60
            ) as http:
                cpu_gateway = gateway.cpu_seconds()
                started = time.perf_counter()
                enqueue_s = await self.enqueue(http, producer)
                deadline = started + RUN_TIMEOUT_S
                committed = 0
                while time.perf_counter() < deadline:
                    committed = await db.fetchval("SELECT count(*) FROM parcel_history")
                    if committed >= self.args.tasks:
                        break
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - started
                cpu_gateway = gateway.cpu_seconds() - cpu_gateway
                routed = _routed((await http.get("/metrics")).text)
        finally:
            await db.close()
            stop.set()
            await asyncio.gather(*running, return_exceptions=True)
            await asyncio.gather(*(w.client.aclose() for w in workers))
            if celery is not None:
                celery.terminate()
                celery.wait(timeout=60)
        total = routed["native"] + routed["celery"]
        return {
            "scenario": self.scenario,
            "share": self.share,
            "enqueue_s": enqueue_s,
            "elapsed_s": elapsed,
            "committed": committed,
            "tasks_per_s": committed / elapsed,
            "routed": routed,
            "realised_share": routed["celery"] / total if total else None,
            "gateway_cpu_s": cpu_gateway,
        }

    def plain_database_url(self) -> str:
        """This run's database as asyncpg spells it."""
        return self.database_url.replace("postgresql+asyncpg://", "postgresql://")

    def delete_queues(self) -> None:
        """The route and results queues are durable: they would outlive the run."""
        names = [self.route_queue, f"{self.results_queue}.parcel", f"{self.results_queue}.party"]
        with Connection(self.args.broker_url, connect_timeout=5) as conn:
            channel = conn.channel()
            for name in names:
                for entity in (Queue(name, channel=channel), Exchange(name, channel=channel)):
                    try:
                        entity.delete()
                    except Exception:  # noqa: S112 - never declared in this run
                        continue


def main() -> int:
    """Run every scenario `--runs` times; exit 1 when a correctness check fails."""
    args = parse_args()
    (RESULTS_DIR / "logs").mkdir(parents=True, exist_ok=True)
    scenarios = [s for s in args.scenarios.split(",") if s]
    load = os.getloadavg()
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in scenarios}
    for run in range(1, args.runs + 1):
        for scenario in scenarios:
            print(f"run {run}/{args.runs}: {scenario} ...", file=sys.stderr, flush=True)
            result = asyncio.run(RoutingRun(args, run, scenario).execute())
            runs[scenario].append(result)
            print(
                f"  {result['tasks_per_s']:.0f} tasks/s, lost {result['lost']}, "
                f"duplicates {result['duplicate_completions']}",
                file=sys.stderr,
                flush=True,
            )
    load_after = os.getloadavg()
    medians = {s: statistics.median(r["tasks_per_s"] for r in rs) for s, rs in runs.items()}
    base = medians.get("native")
    print(
        f"\ncelery routing: {args.tasks} tasks, {args.workers} HTTP workers, "
        f"{args.celery_threads} Celery threads (RabbitMQ), {args.runs} runs; end to end, "
        "results committed"
    )
    print(f"load average before {load[0]:.2f}, after {load_after[0]:.2f}\n")
    print(
        f"{'scenario':10} {'share':>6} {'median/s':>9} {'min':>7} {'max':>7} "
        f"{'vs native':>9} {'realised':>9} {'lost':>5} {'dupes':>6}"
    )
    for scenario, rs in runs.items():
        values = [r["tasks_per_s"] for r in rs]
        ratio = f"{medians[scenario] / base:.2f}" if base else "-"
        realised = [r["realised_share"] for r in rs if r["realised_share"] is not None]
        shown = f"{statistics.median(realised):.3f}" if realised else "-"
        print(
            f"{scenario:10} {SCENARIOS[scenario]:>6.2f} {medians[scenario]:>9.0f} "
            f"{min(values):>7.0f} {max(values):>7.0f} {ratio:>9} {shown:>9} "
            f"{max(r['lost'] for r in rs):>5} {max(r['duplicate_completions'] for r in rs):>6}"
        )
    record = {
        "parameters": vars(args),
        "load_average_before": load,
        "load_average_after": load_after,
        "runs": runs,
        "median_tasks_per_s": medians,
    }
    (RESULTS_DIR / "celery_routing.json").write_text(json.dumps(record, indent=2, default=str))
    bad = any(r["lost"] or r["duplicate_completions"] for rs in runs.values() for r in rs)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
