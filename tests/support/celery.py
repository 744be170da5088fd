"""Helpers for Celery routing tests: brokers (RabbitMQ, Redis), a real Celery worker
process running examples/celery_worker.py, and a gateway worker plane routed to it.

RabbitMQ is the machine's (`RABBITMQ_URL`, default guest on 127.0.0.1:5672); each test
uses queue names of its own. With CI=true an unreachable RabbitMQ, or Celery not
installed, fails the test: CI never skips the Celery path.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import Settings
from gateway.core.settings.celery import CeleryRoute
from gateway.work.plane import WorkerPlane

ROOT = Path(__file__).resolve().parents[2]
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    if _in_ci():
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def require_celery() -> None:
    """Celery must be importable (the `celery` extra)."""
    try:
        import celery  # noqa: F401
    except ImportError:
        unavailable("celery is not installed (pip install -e '.[celery]')")


def require_broker(url: str, options: dict[str, Any]) -> None:
    """The broker must answer."""
    from gateway.work.routing.consumer import check_broker

    try:
        check_broker(url, options)
    except Exception as exc:
        unavailable(f"the broker {url.split('@')[-1]} is unreachable ({type(exc).__name__})")


@dataclass(frozen=True)
class Broker:
    """A broker URL with the transport options that isolate this test on it."""

    url: str
    options: dict[str, Any]


def broker_for(kind: str, redis_url: str, prefix: str) -> Broker:
    """RabbitMQ, or Redis with this test's key prefix (and a short visibility timeout, so a
    killed worker's message is given back within seconds; longer than the time the tests
    let a task run before killing its worker)."""
    if kind == "amqp":
        return Broker(RABBITMQ_URL, {})
    return Broker(
        redis_url,
        {
            "global_keyprefix": prefix + "celery:",
            "visibility_timeout": 10,
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        },
    )


class CeleryWorker:
    """A `celery worker` process running examples/celery_worker.py on one queue."""

    def __init__(
        self, broker: Broker, queue: str, started_dir: Path, log_path: Path, concurrency: int = 4
    ) -> None:
        self.broker = broker
        self.concurrency = concurrency
        self.queue = queue
        self.started_dir = started_dir
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the worker (it connects and consumes on its own)."""
        env = dict(os.environ)
        env.update(
            CELERY_BROKER_URL=self.broker.url,
            CELERY_BROKER_TRANSPORT_OPTIONS=json.dumps(self.broker.options),
            EXAMPLE_STARTED_DIR=str(self.started_dir),
            PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]),
        )
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "examples.celery_worker",
                "worker",
                "-Q",
                self.queue,
                "-P",
                "threads",
                "-c",
                str(self.concurrency),
                "-n",
                f"w{uuid.uuid4().hex[:8]}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL the worker mid-whatever (no ack, no goodbye)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        """Stop the worker if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None


@contextlib.contextmanager
def celery_worker(
    broker: Broker, queue: str, tmp_path: Path, concurrency: int = 4
) -> Iterator[CeleryWorker]:
    """A started worker, stopped at the end (its log printed if the test failed)."""
    started = tmp_path / "started"
    started.mkdir(exist_ok=True)
    worker = CeleryWorker(broker, queue, started, tmp_path / "celery-worker.log", concurrency)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def celery_settings(settings: Settings, broker: Broker, share: float, **more: object) -> Settings:
    """`settings` with one route (parcel, every platform) at `share` on a queue of its own."""
    tag = uuid.uuid4().hex[:10]
    route = CeleryRoute(
        audience="parcel", platform="*", share=share, task="scrape_parcel", queue=f"t{tag}.parcels"
    )
    values: dict[str, Any] = {
        "celery_broker_url": broker.url,
        "celery_broker_transport_options": broker.options,
        "celery_routes": [route],
        "celery_results_queue": f"t{tag}.results",
        **more,
    }
    return Settings.model_validate({**settings.model_dump(), **values})


def delete_queues(settings: Settings) -> None:
    """Delete the test's route and results queues (durable: they would outlive the test on
    the machine's RabbitMQ). On Redis the key prefix fixture removes them."""
    assert settings.celery_broker_url is not None
    # Any-typed: kombu's API is unannotated (and absent where celery is not installed).
    kombu: Any = importlib.import_module("kombu")
    names = {r.queue for r in settings.celery_routes}
    names |= {f"{settings.celery_results_queue}.{a}" for a in ("parcel", "party")}
    with kombu.Connection(
        settings.celery_broker_url,
        transport_options=settings.celery_broker_transport_options,
        connect_timeout=3,
    ) as conn:
        channel = conn.channel()
        for name in names:
            with contextlib.suppress(Exception):
                kombu.Queue(name, channel=channel).delete()
            with contextlib.suppress(Exception):
                kombu.Exchange(name, channel=channel).delete()


@contextlib.asynccontextmanager
async def routed_plane(settings: Settings) -> AsyncIterator[tuple[Resources, WorkerPlane]]:
    """The parcel worker plane with Celery routing, started (its queues deleted after)."""
    assert settings.redis_url is not None
    assert settings.database_url is not None
    urls = BackendUrls(settings.redis_url, settings.database_url)
    try:
        async with open_resources(settings, urls) as resources:
            plane = WorkerPlane(resources, "parcel")
            await plane.start()
            try:
                yield resources, plane
            finally:
                resources.stopping.set()
                await plane.stop()
    finally:
        delete_queues(settings)


async def history_counts(resources: Resources) -> dict[str, int]:
    """Committed parcel history rows per task id."""
    async with resources.sessionmaker() as session:
        rows = await session.execute(
            sa.text("SELECT task_id, count(*) FROM parcel_history GROUP BY task_id")
        )
        return {str(r[0]): int(r[1]) for r in rows}


def publish_result(
    broker: Broker, results_queue: str, task_id: str, lease_id: str, returned: Any
) -> None:
    """Publish a result message as Celery's `link` callback does (a redelivery)."""
    from gateway.work.routing.messages import RESULT_TASK, celery_task_id
    from gateway.work.routing.publisher import celery_client

    app = celery_client(broker.url, broker.options)
    try:
        app.send_task(
            RESULT_TASK,
            args=(returned,),
            queue=results_queue,
            parent_id=celery_task_id(task_id, lease_id),
        )
    finally:
        app.close()


async def history_rows(resources: Resources) -> list[tuple[str, str, dict[str, Any]]]:
    """(task id, lease id, row) of every parcel history row."""
    async with resources.sessionmaker() as session:
        rows = await session.execute(sa.text("SELECT * FROM parcel_history"))
        return [(str(r.task_id), str(r.lease_id), dict(r._mapping)) for r in rows]
