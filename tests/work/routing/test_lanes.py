"""Celery lanes in the queue: a routed task waits where HTTP workers never lease it, is
leased by the Celery dispatcher with its lane, and stays on its side when it comes back
(a retry, a reclaimed lease, a requeued dead letter)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from gateway.audit.service import AuditLog
from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.work.deadletters import DeadLetters, Requeued
from gateway.work.holder import LeaseHolder
from gateway.work.models import TaskIn
from gateway.work.queue import CELERY_READY, Drained, FailureIn, WorkQueue
from gateway.work.scripts import load_scripts
from gateway.work.stats import queue_stats
from tests.support.audit import TEST_ACTOR
from tests.support.work import reap_until_reclaimed

pytestmark = pytest.mark.integration

CELERY = LeaseHolder(0, "celery")
NATIVE_WORKER = LeaseHolder(1, "w1")


class ByKey:
    """Keys starting with `c` go to the route `parcel/alpha`, the rest stay native."""

    def __init__(self) -> None:
        self.kinds: list[str | None] = []

    async def lanes(self, tasks: Sequence[TaskIn], kind: str | None) -> list[str]:
        self.kinds.append(kind)
        return ["parcel/alpha" if t.key.startswith("c") else "" for t in tasks]


@contextlib.asynccontextmanager
async def _queue(settings: Settings, lanes: ByKey, **overrides: object) -> AsyncIterator[WorkQueue]:
    tuned = settings.model_copy(update=overrides)
    assert tuned.redis_url is not None
    client = Redis.from_url(tuned.redis_url)
    try:
        base = tuned.redis_key_prefix + "wq:parcel:"
        yield WorkQueue(client, load_scripts(client), base, tuned, lanes)
    finally:
        await client.aclose()


async def test_routed_tasks_are_leased_only_by_the_celery_dispatcher(settings: Settings) -> None:
    lanes = ByKey()
    async with _queue(settings, lanes) as queue:
        await queue.enqueue([TaskIn(platform="alpha", key=k) for k in ("c1", "n1", "c2", "n2")])
        await queue.attach("job1", [TaskIn(platform="alpha", key="c3")], kind="parcel_refresh")
        assert lanes.kinds == ["producer", "parcel_refresh"]

        native = await queue.lease(NATIVE_WORKER, ["alpha"], 10)
        assert sorted(t.key for t in native.tasks) == ["n1", "n2"]
        assert native.lanes == ["", ""]

        celery = await queue.lease(CELERY, ["alpha"], 10, ready=CELERY_READY, lease_s=3600)
        assert [t.key for t in celery.tasks] == ["c1", "c2", "c3"]
        assert celery.lanes == ["parcel/alpha"] * 3
        # The Celery lease timeout, not LEASE_TIMEOUT_S (300 s).
        first = await queue.task(celery.tasks[0].task_id)
        assert first is not None
        assert first["state"] == "leased"
        assert int(first["lease_exp"]) - int(first["created_ms"]) > 3000 * 1000
        assert (await queue.lease(NATIVE_WORKER, ["alpha"], 10)).tasks == []


async def test_a_routed_task_that_comes_back_stays_on_celery(
    settings: Settings, resources: Resources
) -> None:
    lanes = ByKey()
    async with _queue(
        settings,
        lanes,
        retry_backoff_base_s=0,
        retry_backoff_cap_s=0,
        max_attempts=3,
    ) as queue:
        await queue.enqueue([TaskIn(platform="alpha", key="c1")])
        (task,) = (await queue.lease(CELERY, ["alpha"], 1, ready=CELERY_READY)).tasks

        # A failure reported for the Celery lease: retried, on the Celery side.
        (settled,) = await queue.fail([FailureIn(task.task_id, task.lease_id, "502", True)], CELERY)
        assert settled.status == "retry"
        assert (await queue.lease(NATIVE_WORKER, ["alpha"], 10)).tasks == []
        (again,) = (await queue.lease(CELERY, ["alpha"], 1, ready=CELERY_READY, lease_s=0.05)).tasks
        assert (again.task_id, again.attempt) == (task.task_id, 2)

        # Its lease runs out: the reaper retries it, still on the Celery side.
        await reap_until_reclaimed(queue, 1)
        (third,) = (await queue.lease(CELERY, ["alpha"], 1, ready=CELERY_READY)).tasks
        assert third.attempt == 3

        # The last attempt fails: a dead letter; requeued, it comes back to Celery.
        (dead,) = await queue.fail([FailureIn(task.task_id, third.lease_id, "x", True)], CELERY)
        assert dead.status == "dead"
        # The requeue is audited: the audit log needs the database.
        letters = DeadLetters(queue, AuditLog(resources.sessionmaker), "parcel")
        assert (await letters.requeue([task.task_id], actor=TEST_ACTOR)).requeued == 1
        assert (await queue.lease(NATIVE_WORKER, ["alpha"], 10)).tasks == []
        (back,) = (await queue.lease(CELERY, ["alpha"], 1, ready=CELERY_READY)).tasks
        assert back.task_id == task.task_id


async def test_an_http_worker_cannot_settle_a_celery_lease(settings: Settings) -> None:
    async with _queue(settings, ByKey()) as queue:
        await queue.enqueue([TaskIn(platform="alpha", key="c1")])
        (task,) = (await queue.lease(CELERY, ["alpha"], 1, ready=CELERY_READY)).tasks
        (settled,) = await queue.fail(
            [FailureIn(task.task_id, task.lease_id, "x", False)], NATIVE_WORKER
        )
        assert settled.status == "not_holder"


async def test_queue_depth_counts_routed_tasks_waiting_for_the_dispatcher(
    settings: Settings,
) -> None:
    async with _queue(settings, ByKey()) as queue:
        await queue.enqueue([TaskIn(platform="alpha", key=k) for k in ("c1", "c2", "n1")])
        stats = await queue_stats(queue, 60)
        assert stats.depth[("alpha", "celery_ready")] == 2
        assert stats.depth[("alpha", "ready")] == 1
        await queue.lease(CELERY, ["alpha"], 1, ready=CELERY_READY)
        stats = await queue_stats(queue, 60)
        assert stats.depth[("alpha", "celery_ready")] == 1
        assert stats.depth[("alpha", "leased")] == 1


async def test_releasing_a_celery_lease_ends_it_and_names_the_celery_task_to_revoke(
    settings: Settings,
) -> None:
    async with _queue(settings, ByKey()) as queue:
        attached = await queue.attach(
            "job1",
            [TaskIn(platform="alpha", key=k) for k in ("c1", "c2", "n1")],
            kind="parcel_refresh",
        )
        c1, c2, n1 = attached.task_ids
        leased = await queue.lease(CELERY, ["alpha"], 1, ready=CELERY_READY, lease_s=60)
        (celery_lease,) = leased.tasks
        assert celery_lease.task_id == c1
        (native,) = (await queue.lease(NATIVE_WORKER, ["alpha"], 5)).tasks

        outcome = await queue.release("job1", [c1, c2, n1])

        # The Celery lease ended (nothing would ever heartbeat it), the waiting routed
        # task was removed, the HTTP lease stays until its worker hears `cancelled`.
        assert outcome.statuses == ["revoked", "removed", "cancelled_leased"]
        assert outcome.revoke == [f"{c1}.{celery_lease.lease_id}"]
        assert await queue.task(c1) is None
        assert await queue.task(c2) is None
        assert (await queue.task(n1) or {})["cancelled"] == "1"
        assert native.task_id == n1
        stats = await queue_stats(queue, 60)
        assert stats.depth[("alpha", "leased")] == 1
        assert stats.depth[("alpha", "celery_ready")] == 0


async def test_draining_a_lane_sends_its_tasks_back_to_native(
    settings: Settings, resources: Resources
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    async with _queue(settings, ByKey(), max_attempts=1) as queue:
        await queue.enqueue(
            [
                *(TaskIn(platform="alpha", key=f"c{i}") for i in range(5)),
                TaskIn(platform="alpha", key="n1"),
                TaskIn(platform="beta", key="c-beta"),
                TaskIn(platform="alpha", key="c-later", not_before=later),
            ]
        )
        # One Celery lease that stays leased, one that fails into the dead letters.
        leased, dying = (await queue.lease(CELERY, ["alpha"], 2, ready=CELERY_READY)).tasks
        (dead,) = await queue.fail([FailureIn(dying.task_id, dying.lease_id, "x", True)], CELERY)
        assert dead.status == "dead"

        drained = await queue.drain_lane("parcel/alpha", chunk=2)

        # c2, c3, c4 and c-beta were waiting for the dispatcher: native ready now; the
        # delayed, dead and leased ones lost the lane where they are.
        assert (drained.to_native, drained.relabelled) == (4, 3)
        stats = await queue_stats(queue, 60)
        assert stats.depth[("alpha", "celery_ready")] == 0
        native = await queue.lease(NATIVE_WORKER, ["alpha", "beta"], 10)
        assert sorted(t.key for t in native.tasks) == ["c-beta", "c2", "c3", "c4", "n1"]
        letters = DeadLetters(queue, AuditLog(resources.sessionmaker), "parcel")
        assert await letters.requeue([dying.task_id], actor=TEST_ACTOR) == Requeued(1, 0)
        (back,) = (await queue.lease(NATIVE_WORKER, ["alpha"], 10)).tasks
        assert back.task_id == dying.task_id
        assert (await queue.task(leased.task_id) or {}).get("lane") is None
        # Nothing is left to drain.
        assert await queue.drain_lane("parcel/alpha") == Drained(0, 0)
