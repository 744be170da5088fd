"""Waiters on the queue: who wants a task decides whether releasing one removes it.

A job attaches as a waiter (new task or the live one), a producer marks its tasks, and a
task nobody wants any more leaves the queue, or, when a worker holds it, is cancelled:
its failure or expiry then deletes it instead of retrying or dead-lettering it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from gateway.core.settings import Settings
from gateway.work.deadletters import DeadLetters
from gateway.work.holder import LeaseHolder
from gateway.work.models import TaskIn
from gateway.work.queue import FailureIn, ReapCount, WorkQueue
from gateway.work.scripts import load_scripts
from tests.support.audit import offline_audit
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

W1 = LeaseHolder(1, "w1")


@contextlib.asynccontextmanager
async def _queue(settings: Settings, **overrides: object) -> AsyncIterator[WorkQueue]:
    tuned = settings.model_copy(update=overrides)
    assert tuned.redis_url is not None
    client = Redis.from_url(tuned.redis_url)
    try:
        yield WorkQueue(client, load_scripts(client), tuned.redis_key_prefix + "wq:parcel:", tuned)
    finally:
        await client.aclose()


def _task(key: str, **fields: object) -> TaskIn:
    return TaskIn.model_validate({"platform": "alpha", "key": key, **fields})


async def _field(queue: WorkQueue, task_id: str, name: str) -> str | None:
    task = await queue.task(task_id)
    assert task is not None, f"task {task_id} is gone"
    value = task.get(name)
    return None if value is None else str(value)


async def _leased(queue: WorkQueue, holder: LeaseHolder = W1) -> list[str]:
    return [t.task_id for t in (await queue.lease(holder, ["alpha"], 10)).tasks]


async def test_attach_creates_or_joins_the_live_task_once_per_waiter(settings: Settings) -> None:
    async with _queue(settings) as queue:
        first = await queue.attach("job_a", [_task("k1")])
        assert first.new == [True]
        (k1,) = first.task_ids
        assert await _field(queue, k1, "j:job_a") == "1"
        assert await _field(queue, k1, "waiters") == "1"
        assert await _field(queue, k1, "producer") is None  # a job is not a producer

        second = await queue.attach("job_b", [_task("k1"), _task("k2")])
        assert second.new == [False, True]
        assert second.task_ids[0] == k1
        assert await _field(queue, k1, "waiters") == "2"

        again = await queue.attach("job_a", [_task("k1")])  # idempotent
        assert (again.task_ids, again.new) == ([k1], [False])
        assert await _field(queue, k1, "waiters") == "2"
        # Attached tasks are ordinary work: leasable, each once.
        assert sorted(await _leased(queue)) == sorted([k1, second.task_ids[1]])


@pytest.mark.parametrize("waiter", ["", "job:1", "job-1", "j" * 65, "job 1"])
async def test_a_waiter_id_outside_the_alphabet_is_refused(settings: Settings, waiter: str) -> None:
    async with _queue(settings) as queue:
        with pytest.raises(ValueError, match="waiter"):
            await queue.attach(waiter, [_task("k")])
        with pytest.raises(ValueError, match="waiter"):
            await queue.release(waiter, ["t"])


async def test_enqueue_marks_the_producer_also_on_a_job_s_live_task(settings: Settings) -> None:
    async with _queue(settings) as queue:
        (own,) = (await queue.enqueue([_task("own")])).task_ids
        assert await _field(queue, own, "producer") == "1"
        (shared,) = (await queue.attach("job_a", [_task("shared")])).task_ids
        dup = await queue.enqueue([_task("shared")])
        assert (dup.task_ids, dup.new) == ([shared], [False])
        assert await _field(queue, shared, "producer") == "1"
        # The producer still wants it: releasing the job's waiter keeps it queued.
        released = await queue.release("job_a", [shared])
        assert released.statuses == ["kept"]
        assert sorted(await _leased(queue)) == sorted([own, shared])


async def test_release_removes_a_ready_task_nobody_wants_and_frees_its_key(
    settings: Settings,
) -> None:
    async with _queue(settings) as queue:
        (tid,) = (await queue.attach("job_a", [_task("k")])).task_ids
        released = await queue.release("job_a", [tid])
        assert released.statuses == ["removed"]
        assert released.counts == {
            "removed": 1,
            "cancelled_leased": 0,
            "revoked": 0,
            "kept": 0,
            "unknown": 0,
        }
        assert await queue.task(tid) is None
        assert await _leased(queue) == []
        assert await queue.redis.zcard(queue.key("since", "alpha")) == 0
        again = await queue.enqueue([_task("k")])
        assert again.new == [True]
        assert again.task_ids != [tid]
        # Releasing again changes nothing: the task is unknown now.
        assert (await queue.release("job_a", [tid])).statuses == ["unknown"]


async def test_release_removes_a_delayed_task_nobody_wants(settings: Settings) -> None:
    later = datetime.now(UTC) + timedelta(days=1)
    async with _queue(settings) as queue:
        (tid,) = (await queue.attach("job_a", [_task("k", not_before=later)])).task_ids
        assert await _field(queue, tid, "state") == "delayed"
        assert (await queue.release("job_a", [tid])).statuses == ["removed"]
        assert await queue.task(tid) is None
        assert await queue.redis.zcard(queue.key("delayed", "alpha")) == 0
        assert (await queue.attach("job_b", [_task("k")])).new == [True]


async def test_a_task_stays_while_another_waiter_wants_it(settings: Settings) -> None:
    async with _queue(settings) as queue:
        (tid,) = (await queue.attach("job_a", [_task("k")])).task_ids
        await queue.attach("job_b", [_task("k")])
        assert (await queue.release("job_a", [tid])).statuses == ["kept"]
        assert await _field(queue, tid, "waiters") == "1"
        # A waiter that is not (or no longer) on the task changes nothing.
        assert (await queue.release("job_a", [tid])).statuses == ["kept"]
        assert (await queue.release("job_c", [tid])).statuses == ["kept"]
        assert await _field(queue, tid, "waiters") == "1"
        assert (await queue.release("job_b", [tid])).statuses == ["removed"]


async def test_a_task_enqueued_before_waiters_existed_counts_as_a_producer_s(
    settings: Settings,
) -> None:
    async with _queue(settings) as queue:
        (tid,) = (await queue.enqueue([_task("k")])).task_ids
        await queue.redis.hdel(queue.key("t", tid), "producer")  # as an older replica wrote it
        await queue.attach("job_a", [_task("k")])
        assert (await queue.release("job_a", [tid])).statuses == ["kept"]
        assert await _leased(queue) == [tid]


async def test_release_leaves_dead_letters_and_unknown_tasks_alone(settings: Settings) -> None:
    async with _queue(settings) as queue:
        (tid,) = (await queue.attach("job_a", [_task("k")])).task_ids
        await queue.attach("job_b", [_task("k")])
        (task,) = (await queue.lease(W1, ["alpha"], 1)).tasks
        (settled,) = await queue.fail([FailureIn(tid, task.lease_id, "gone", False)], W1)
        assert (settled.status, settled.waiters, settled.attempt) == ("dead", 2, 1)
        released = await queue.release("job_a", [tid, "no_such_task"])
        assert released.statuses == ["kept", "unknown"]
        assert await DeadLetters(queue, offline_audit(), "parcel").ids() == [tid]


async def test_check_reports_how_many_jobs_wait(settings: Settings) -> None:
    async with _queue(settings) as queue:
        (waited,) = (await queue.attach("job_a", [_task("w")])).task_ids
        await queue.attach("job_b", [_task("w")])
        (plain,) = (await queue.enqueue([_task("p")])).task_ids
        leases = {t.task_id: t.lease_id for t in (await queue.lease(W1, ["alpha"], 2)).tasks}
        checks = await queue.check([(waited, leases[waited]), (plain, leases[plain])], W1)
        assert [(c.status, c.waiters) for c in checks] == [("current", 2), ("current", 0)]


async def test_a_cancelled_lease_s_failure_deletes_its_task(settings: Settings) -> None:
    async with _queue(settings) as queue:
        (tid,) = (await queue.attach("job_a", [_task("k")])).task_ids
        (task,) = (await queue.lease(W1, ["alpha"], 1)).tasks
        assert (await queue.release("job_a", [tid])).statuses == ["cancelled_leased"]
        assert await _field(queue, tid, "state") == "leased"  # the worker may still finish
        assert await _field(queue, tid, "cancelled") == "1"
        # A retryable failure would be retried; cancelled, it is deleted.
        failure = FailureIn(tid, task.lease_id, "502", True)
        (settled,) = await queue.fail([failure], W1)
        assert settled.status == "cancelled"
        assert await queue.task(tid) is None
        assert await queue.redis.zcard(queue.key("delayed", "alpha")) == 0
        assert await queue.redis.zcard(queue.key("leased", "alpha")) == 0
        assert await DeadLetters(queue, offline_audit(), "parcel").ids() == []
        assert (await queue.fail([failure], W1))[0].status == "stale"  # nothing left of it
        assert (await queue.enqueue([_task("k")])).new == [True]  # its key is free


async def test_a_cancelled_lease_s_expiry_deletes_its_task(settings: Settings) -> None:
    async with _queue(settings, lease_timeout_s=0.05, max_attempts=1) as queue:
        (tid,) = (await queue.attach("job_a", [_task("k")])).task_ids
        await _leased(queue)
        await queue.release("job_a", [tid])
        cancelled: list[ReapCount] = []

        async def reaped() -> bool:
            result = await queue.reap()
            cancelled.extend(c for c in result.counts if c.kind == "cancelled")
            assert result.dead == []  # max_attempts=1 would dead-letter it, were it wanted
            return bool(cancelled)

        await wait_until(reaped, what="the cancelled lease expiring")
        assert [(c.platform, c.count) for c in cancelled] == [("alpha", 1)]
        assert await queue.task(tid) is None
        assert await DeadLetters(queue, offline_audit(), "parcel").ids() == []
        assert (await queue.attach("job_b", [_task("k")])).new == [True]


async def test_attaching_again_un_cancels_a_lease(settings: Settings) -> None:
    async with _queue(
        settings, lease_timeout_s=0.05, retry_backoff_base_s=0, retry_backoff_cap_s=0
    ) as queue:
        (tid,) = (await queue.attach("job_a", [_task("k")])).task_ids
        await _leased(queue)
        await queue.release("job_a", [tid])
        assert (await queue.attach("job_b", [_task("k")])).task_ids == [tid]
        assert await _field(queue, tid, "cancelled") is None
        retried: list[ReapCount] = []

        async def reaped() -> bool:
            retried.extend(c for c in (await queue.reap()).counts if c.kind == "retry")
            return bool(retried)

        await wait_until(reaped, what="the lease expiring")
        assert await _field(queue, tid, "attempt") == "2"  # retried: job_b wants it
        assert await _leased(queue, LeaseHolder(1, "w2")) == [tid]


async def test_reap_reports_dead_letters_jobs_wait_for(settings: Settings) -> None:
    async with _queue(settings, lease_timeout_s=0.05, max_attempts=1) as queue:
        (waited,) = (await queue.attach("job_a", [_task("w")])).task_ids
        await queue.enqueue([_task("p")])  # a producer's: dead-lettered, reported to nobody
        assert len(await _leased(queue)) == 2
        dead = []
        counted = 0

        async def reaped() -> bool:
            nonlocal counted
            result = await queue.reap()
            dead.extend(result.dead)
            counted += sum(c.count for c in result.counts if c.kind == "dead")
            return counted == 2

        await wait_until(reaped, what="both leases expiring")
        assert [(d.task_id, d.platform, d.error, d.attempts) for d in dead] == [
            (waited, "alpha", "lease expired", 1)
        ]
