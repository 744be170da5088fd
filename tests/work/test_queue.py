"""The Redis queue: atomic leasing, one reclaim per lease, and the order a worker sees
(a task that comes back keeps its place)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from gateway.audit.service import AuditLog
from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.work.deadletters import DeadLetters
from gateway.work.holder import LeaseHolder
from gateway.work.models import TaskIn
from gateway.work.queue import FailureIn, WorkQueue
from gateway.work.scripts import load_scripts
from tests.support.audit import TEST_ACTOR
from tests.support.work import (
    enqueue,
    lease,
    make_token,
    parcel_data,
    post_results,
    reap_until_reclaimed,
    succeeded,
)

pytestmark = pytest.mark.integration

TASKS = 300
WORKERS = 25


async def test_concurrent_workers_never_share_a_task_and_complete_each_once(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    await enqueue(
        parcel_client,
        token,
        [{"platform": p, "key": f"k{i}"} for i in range(TASKS // 3) for p in ("a", "b", "c")],
    )
    held: set[str] = set()
    leases: Counter[str] = Counter()
    overlaps: list[str] = []

    async def worker(n: int) -> None:
        empty = 0
        for _ in range(200):  # bounded: 300 tasks / 25 workers needs far fewer rounds
            tasks = await lease(parcel_client, token, worker_id=f"w{n}", platforms="a,b,c", limit=5)
            if not tasks:
                empty += 1
                if empty >= 2:
                    return
                await asyncio.sleep(0.01)
                continue
            for t in tasks:
                if t["task_id"] in held:
                    overlaps.append(t["task_id"])
                held.add(t["task_id"])
                leases[t["task_id"]] += 1
            results = [succeeded(t, parcel_data(f"{t['platform']}-{t['key']}")) for t in tasks]
            response = await post_results(parcel_client, token, results, worker_id=f"w{n}")
            assert response.json()["accepted"] == len(tasks)
            for t in tasks:
                held.discard(t["task_id"])

    await asyncio.gather(*(worker(n) for n in range(WORKERS)))
    assert overlaps == []
    assert len(leases) == TASKS
    assert set(leases.values()) == {1}
    async with resources.sessionmaker() as session:
        history = (
            await session.execute(
                sa.text("SELECT count(*), count(DISTINCT task_id) FROM parcel_history")
            )
        ).one()
        current = (await session.execute(sa.text("SELECT count(*) FROM parcels"))).scalar_one()
    assert tuple(history) == (TASKS, TASKS)
    assert current == TASKS


async def test_concurrent_reapers_reclaim_each_lease_exactly_once(settings: Settings) -> None:
    tuned = settings.model_copy(
        update={"lease_timeout_s": 0.2, "retry_backoff_base_s": 0, "retry_backoff_cap_s": 0}
    )
    assert tuned.redis_url is not None
    base = tuned.redis_key_prefix + "wq:parcel:"
    clients = [Redis.from_url(tuned.redis_url) for _ in range(6)]
    try:
        queues = [WorkQueue(c, load_scripts(c), base, tuned) for c in clients]
        await queues[0].enqueue([TaskIn(platform="alpha", key=f"k{i}") for i in range(50)])
        leased = (await queues[0].lease(LeaseHolder(1, "crashed"), ["alpha"], 50)).tasks
        assert len(leased) == 50
        await asyncio.sleep(0.3)
        results = await asyncio.gather(*(q.reap() for q in queues for _ in range(3)))
        reclaimed = sum(c.count for r in results for c in r.counts if c.kind == "retry")
        assert reclaimed == 50
        for t in leased:
            task = await queues[0].task(t.task_id)
            assert task is not None
            assert task["attempt"] == 2
            assert [e["message"] for e in task["errors"]] == ["lease expired"]
        # Promoted (backoff 0) and leasable again, each exactly once.
        again = (await queues[1].lease(LeaseHolder(1, "next"), ["alpha"], 100)).tasks
        assert sorted(t.task_id for t in again) == sorted(t.task_id for t in leased)
    finally:
        for c in clients:
            await c.aclose()


@contextlib.asynccontextmanager
async def _queue(settings: Settings, **overrides: object) -> AsyncIterator[WorkQueue]:
    tuned = settings.model_copy(update=overrides)
    assert tuned.redis_url is not None
    client = Redis.from_url(tuned.redis_url)
    try:
        yield WorkQueue(client, load_scripts(client), tuned.redis_key_prefix + "wq:parcel:", tuned)
    finally:
        await client.aclose()


async def _keys_in_lease_order(queue: WorkQueue, n: int) -> list[str]:
    leased = (await queue.lease(LeaseHolder(1, "reader"), ["alpha"], n)).tasks
    return [t.key for t in leased]


BACKLOG = [TaskIn(platform="alpha", key=f"b{i}") for i in range(20)]


async def test_a_reclaimed_task_keeps_its_place_ahead_of_the_backlog(settings: Settings) -> None:
    async with _queue(
        settings, lease_timeout_s=0.05, retry_backoff_base_s=0, retry_backoff_cap_s=0
    ) as queue:
        await queue.enqueue([TaskIn(platform="alpha", key="first")])
        await queue.enqueue(BACKLOG)
        crashed = (await queue.lease(LeaseHolder(1, "crashed"), ["alpha"], 1)).tasks
        assert [t.key for t in crashed] == ["first"]
        await reap_until_reclaimed(queue, 1)
        # Higher priority still goes first; within a priority the reclaimed task is back
        # at the head, not behind the 20 tasks enqueued after it.
        await queue.enqueue([TaskIn(platform="alpha", key="urgent", priority=5)])
        assert await _keys_in_lease_order(queue, 3) == ["urgent", "first", "b0"]


async def test_a_task_retried_after_backoff_keeps_its_place(settings: Settings) -> None:
    async with _queue(settings, retry_backoff_base_s=0, retry_backoff_cap_s=0) as queue:
        await queue.enqueue([TaskIn(platform="alpha", key="first"), *BACKLOG[:5]])
        (task,) = (await queue.lease(LeaseHolder(1, "w1"), ["alpha"], 1)).tasks
        failure = FailureIn(task.task_id, task.lease_id, "502", True)
        settled = await queue.fail([failure], LeaseHolder(1, "w1"))
        assert [s.status for s in settled] == ["retry"]
        assert await _keys_in_lease_order(queue, 2) == ["first", "b0"]


async def test_a_dead_letter_requeued_by_an_operator_keeps_its_place(
    settings: Settings, resources: Resources
) -> None:
    async with _queue(settings) as queue:
        await queue.enqueue([TaskIn(platform="alpha", key="first"), *BACKLOG[:5]])
        (task,) = (await queue.lease(LeaseHolder(1, "w1"), ["alpha"], 1)).tasks
        failure = FailureIn(task.task_id, task.lease_id, "gone", False)
        settled = await queue.fail([failure], LeaseHolder(1, "w1"))
        assert [s.status for s in settled] == ["dead"]
        dead_letters = DeadLetters(queue, AuditLog(resources.sessionmaker), "parcel")
        assert (await dead_letters.requeue([task.task_id], actor=TEST_ACTOR)).requeued == 1
        assert await _keys_in_lease_order(queue, 2) == ["first", "b0"]
