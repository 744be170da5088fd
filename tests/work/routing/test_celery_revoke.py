"""Cancelling a job revokes its Celery-routed task that has not started: a real Celery
worker (one slot, held busy by another task) never runs it, and the gateway's queue
forgets it at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.settings import Settings
from gateway.work.models import TaskIn
from gateway.work.plane import work_queue
from gateway.work.queue import WorkQueue
from gateway.work.routing.messages import celery_task_id
from gateway.work.routing.publisher import celery_client
from tests.support.celery import (
    Broker,
    broker_for,
    celery_settings,
    celery_worker,
    delete_queues,
    history_counts,
    require_broker,
    require_celery,
)
from tests.support.jobs import jobs_harness
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(params=["amqp", "redis"])
def broker(request: pytest.FixtureRequest, settings: Settings) -> Broker:
    require_celery()
    assert settings.redis_url is not None
    found = broker_for(request.param, settings.redis_url, settings.redis_key_prefix)
    require_broker(found.url, found.options)
    return found


async def dispatched(queue: WorkQueue, task_id: str) -> str:
    """Wait until the dispatcher leased (and so published) the task; its lease id."""
    found: dict[str, str] = {}

    async def leased() -> bool:
        task = await queue.task(task_id)
        if task is not None and task["state"] == "leased":
            found["lease_id"] = task["lease_id"]
            return True
        return False

    await wait_until(leased, within_s=30, what=f"task {task_id} dispatched to Celery")
    return found["lease_id"]


async def test_cancelling_a_job_revokes_its_celery_task_that_has_not_started(
    settings: Settings, broker: Broker, tmp_path: Path
) -> None:
    routed = celery_settings(settings, broker, share=1.0)
    route = routed.celery_routes[0]
    control = celery_client(broker.url, broker.options)
    try:
        async with jobs_harness(routed) as h:
            queue = work_queue(h.resources, "parcel")
            with celery_worker(broker, route.queue, tmp_path, concurrency=1) as worker:
                # The worker's only slot is taken by a task held until the test lets go,
                # so what is published next waits in the broker.
                outcome = await queue.enqueue(
                    [TaskIn(platform="alpha", key="blocker", payload={"hold": "go"})]
                )
                (blocker,) = outcome.task_ids
                await wait_until(
                    (worker.started_dir / "blocker").exists, within_s=60, what="the blocker"
                )
                key = await h.key()
                created = await h.submit(key, ["wanted-then-not"])
                assert created.status_code == 201, created.text
                job_id = created.json()["id"]
                (cancelled,) = await queue.live_task_ids([("alpha", "wanted-then-not")])
                assert cancelled is not None
                lease_id = await dispatched(queue, cancelled)
                (after,) = (await queue.enqueue([TaskIn(platform="alpha", key="after")])).task_ids
                await dispatched(queue, after)

                response = await h.public.post(
                    f"/v1/jobs/{job_id}/cancel", headers={"X-API-Key": key}
                )
                assert response.status_code == 200, response.text
                # The lease ended with the cancel: the task is gone from the queue.
                assert await queue.task(cancelled) is None

                revoked_id = celery_task_id(cancelled, lease_id)

                def worker_knows() -> bool:
                    replies = control.control.inspect(timeout=1.0).revoked() or {}
                    return any(revoked_id in ids for ids in replies.values())

                await wait_until(worker_knows, within_s=30, what="the revoke on the worker")
                (worker.started_dir / "go").touch()

                async def after_committed() -> bool:
                    return after in await history_counts(h.resources)

                await wait_until(after_committed, within_s=60, what="the task after it")
                # The worker skipped the revoked task and ran the one queued behind it.
                assert not (worker.started_dir / "wanted-then-not").exists()
                assert set(await history_counts(h.resources)) == {blocker, after}
                job = await h.job(key, job_id)
                assert job["state"] == "cancelled"
                assert job["progress"]["cancelled"] == 1
    finally:
        control.close()
        delete_queues(routed)
