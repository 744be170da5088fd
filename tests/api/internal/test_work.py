"""`POST /internal/tasks` and `GET /internal/work`: dedupe, priority, fairness, long-poll."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

import httpx
import pytest

from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.work.plane import WorkerPlane
from tests.support.tcp_proxy import redis_proxy
from tests.support.wait import wait_until
from tests.support.work import enqueue, lease, make_token, work_app

pytestmark = pytest.mark.integration


async def test_a_queued_or_leased_key_is_not_enqueued_twice(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    first = await enqueue(
        parcel_client,
        token,
        [{"platform": "alpha", "key": "p-1"}, {"platform": "beta", "key": "p-1"}],
    )
    assert (first["enqueued"], first["duplicates"]) == (2, 0)
    again = await enqueue(
        parcel_client,
        token,
        [{"platform": "alpha", "key": "p-1"}, {"platform": "alpha", "key": "p-2"}],
    )
    assert (again["enqueued"], again["duplicates"]) == (1, 1)
    assert again["task_ids"][0] == first["task_ids"][0]
    leased = await lease(parcel_client, token, platforms="alpha", limit=10)
    assert sorted(t["key"] for t in leased) == ["p-1", "p-2"]
    while_leased = await enqueue(parcel_client, token, [{"platform": "alpha", "key": "p-1"}])
    assert while_leased["duplicates"] == 1


async def test_lease_shape_priority_and_fifo(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    await enqueue(
        parcel_client,
        token,
        [
            {"platform": "alpha", "key": "low", "payload": {"n": 1}, "priority": -5},
            {"platform": "alpha", "key": "first"},
            {"platform": "alpha", "key": "second"},
            {"platform": "alpha", "key": "urgent", "priority": 10},
        ],
    )
    tasks = await lease(parcel_client, token, limit=4)
    assert [t["key"] for t in tasks] == ["urgent", "first", "second", "low"]
    task = tasks[-1]
    assert set(task) == {
        "task_id",
        "lease_id",
        "platform",
        "key",
        "payload",
        "attempt",
        "lease_expires_at",
    }
    assert task["payload"] == {"n": 1}
    assert task["attempt"] == 1
    assert len({t["lease_id"] for t in tasks}) == 4


async def test_a_busy_platform_does_not_starve_the_others(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    await enqueue(parcel_client, token, [{"platform": "busy", "key": f"b{i}"} for i in range(50)])
    await enqueue(parcel_client, token, [{"platform": "quiet", "key": f"q{i}"} for i in range(3)])
    tasks = await lease(parcel_client, token, platforms="busy,quiet", limit=6)
    counts = Counter(t["platform"] for t in tasks)
    assert counts == {"busy": 3, "quiet": 3}
    # Only platforms the worker names are served.
    assert await lease(parcel_client, token, platforms="other", limit=5) == []


async def test_limit_and_wait_are_capped(settings: Settings) -> None:
    async with work_app(settings, work_max_limit=3, work_max_wait_s=0.2) as (resources, client):
        token = await make_token(resources)
        await enqueue(client, token, [{"platform": "alpha", "key": f"k{i}"} for i in range(10)])
        assert len(await lease(client, token, limit=1000)) == 3
        # Capped at 0.2 s: answered long before the 30 s asked for (a generous bound).
        capped = lease(client, token, platforms="empty", wait=30)
        assert await asyncio.wait_for(capped, timeout=25) == []


async def test_a_lease_batch_stays_within_its_byte_budget(settings: Settings) -> None:
    budget = 100_000
    async with work_app(settings, lease_max_batch_bytes=budget) as (resources, client):
        token = await make_token(resources)
        big = {"blob": "x" * 40_000}
        await enqueue(
            client,
            token,
            [{"platform": "alpha", "key": f"k{i}", "payload": big} for i in range(6)]
            + [{"platform": "beta", "key": f"h{i}", "payload": big} for i in range(2)],
        )
        # `limit` is a maximum: two 40 KB tasks fit in 100 KB, a third would not.
        response = await client.get(
            "/internal/work",
            params={"worker_id": "w1", "platforms": "alpha", "limit": 6},
            headers={"X-Worker-Token": token},
        )
        assert [t["key"] for t in response.json()["tasks"]] == ["k0", "k1"]
        assert len(response.content) <= budget
        # Nothing beyond the answer was leased: the rest is still ready, in order.
        plane = WorkerPlane(resources, "parcel")
        assert await resources.redis.zcard(plane.queue.key("leased", "alpha")) == 2
        assert await resources.redis.zcard(plane.queue.key("ready", "alpha")) == 4
        assert [t["key"] for t in await lease(client, token, limit=6)] == ["k2", "k3"]
        # A task larger than the budget on its own still goes out, alone.
        small = settings.model_copy(update={"lease_max_batch_bytes": 1000})
        async with work_app(small) as (_, tight):
            alone = await lease(tight, token, platforms="beta", limit=6)
            assert [t["key"] for t in alone] == ["h0"]


async def test_not_before_delays_a_task(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    await enqueue(
        parcel_client,
        token,
        [{"platform": "alpha", "key": "later", "not_before": "2999-01-01T00:00:00Z"}],
    )
    assert await lease(parcel_client, token) == []
    stats = await WorkerPlane(resources, "parcel").queue.task(
        (await enqueue(parcel_client, token, [{"platform": "alpha", "key": "later"}]))["task_ids"][
            0
        ]
    )
    assert stats is not None
    assert stats["state"] == "delayed"


async def _wake_subscriber_listening(resources: Resources) -> None:
    """Wait until the parcel plane's wake-up subscriber is subscribed (seen in Redis)."""
    channel = WorkerPlane(resources, "parcel").queue.wake_channel

    async def subscribed() -> bool:
        counts = await resources.redis.pubsub_numsub(channel)
        return bool(counts and counts[0][1])

    await wait_until(subscribed, what="the long-poll wake-up subscriber")


async def test_long_poll_wakes_when_work_is_enqueued(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    await _wake_subscriber_listening(resources)
    waiting = asyncio.create_task(lease(parcel_client, token, platforms="alpha,beta", wait=20))
    await asyncio.sleep(0)  # the request starts
    assert not waiting.done()  # it is holding the request, not answering empty
    await enqueue(parcel_client, token, [{"platform": "beta", "key": "wake-up"}])
    # Answered before wait=20 ends: woken (or at worst by the 5 s safety re-check).
    tasks = await asyncio.wait_for(waiting, timeout=15)
    assert [t["key"] for t in tasks] == ["wake-up"]


async def test_long_poll_ignores_other_platforms(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    await _wake_subscriber_listening(resources)
    waiting = asyncio.create_task(lease(parcel_client, token, platforms="alpha", wait=0.6))
    await asyncio.sleep(0)  # the request starts
    await enqueue(parcel_client, token, [{"platform": "beta", "key": "not-yours"}])
    assert await waiting == []


async def test_long_poll_answers_when_the_gateway_stops(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    await _wake_subscriber_listening(resources)
    waiting = asyncio.create_task(lease(parcel_client, token, wait=30))
    await asyncio.sleep(0)  # the request starts
    resources.stopping.set()
    assert await asyncio.wait_for(waiting, timeout=25) == []  # long before wait=30


@pytest.mark.parametrize(
    "query",
    [
        {"platforms": "alpha"},  # no worker_id
        {"worker_id": "w1"},  # no platforms
        {"worker_id": "w1", "platforms": "Alpha!"},
        {"worker_id": "w 1", "platforms": "alpha"},
        {"worker_id": "w1", "platforms": "alpha", "limit": 0},
        {"worker_id": "w1", "platforms": "alpha", "wait": -1},
        {"worker_id": "w1", "platforms": ","},
    ],
)
async def test_bad_work_queries_are_422(
    resources: Resources, parcel_client: httpx.AsyncClient, query: dict[str, str | int]
) -> None:
    token = await make_token(resources)
    response = await parcel_client.get(
        "/internal/work", params=query, headers={"X-Worker-Token": token}
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"]


@pytest.mark.parametrize(
    "tasks",
    [
        [{"platform": "alpha", "key": ""}],
        [{"platform": "alpha"}],
        [{"platform": "al:pha", "key": "k"}],
        [{"platform": "alpha", "key": "k", "priority": 5000}],
        [{"platform": "alpha", "key": "k", "payload": [1, 2]}],
        [{"platform": "alpha", "key": "k", "not_before": "2026-01-01T00:00:00"}],
        [{"platform": "alpha", "key": "k\u0000"}],
        [{"platform": "alpha", "key": "k", "surprise": 1}],
    ],
)
async def test_bad_tasks_are_422_and_nothing_is_enqueued(
    resources: Resources, parcel_client: httpx.AsyncClient, tasks: list[dict[str, object]]
) -> None:
    token = await make_token(resources)
    response = await parcel_client.post(
        "/internal/tasks",
        json={"tasks": [{"platform": "alpha", "key": "good"}, *tasks]},
        headers={"X-Worker-Token": token},
    )
    assert response.status_code == 422, response.text
    assert await lease(parcel_client, token) == []


async def test_an_empty_batch_is_422(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    response = await parcel_client.post(
        "/internal/tasks", json={"tasks": []}, headers={"X-Worker-Token": token}
    )
    assert response.status_code == 422


async def test_lease_timeout_can_be_overridden_per_platform(settings: Settings) -> None:
    async with work_app(settings, lease_timeout_s=60, lease_timeout_overrides_s={"slow": 3600}) as (
        resources,
        client,
    ):
        token = await make_token(resources)
        await enqueue(
            client, token, [{"platform": "fast", "key": "a"}, {"platform": "slow", "key": "b"}]
        )
        tasks = {
            t["platform"]: t for t in await lease(client, token, platforms="fast,slow", limit=2)
        }
        fast = datetime.fromisoformat(tasks["fast"]["lease_expires_at"])
        slow = datetime.fromisoformat(tasks["slow"]["lease_expires_at"])
        assert timedelta(minutes=50) < slow - fast < timedelta(minutes=70)
        beat = await client.post(
            "/internal/heartbeat",
            json={"worker_id": "w1", "platforms": ["fast", "slow"]},
            headers={"X-Worker-Token": token},
        )
        assert beat.json()["heartbeat_interval_s"] == 20  # a third of the shortest lease


async def test_redis_outage_is_503_not_500(settings: Settings) -> None:
    assert settings.redis_url is not None
    proxy, proxied = redis_proxy(settings.redis_url)
    await proxy.start()
    try:
        async with work_app(settings, redis_url=proxied) as (resources, client):
            token = await make_token(resources)
            assert await lease(client, token) == []
            await proxy.cut()
            response = await client.get(
                "/internal/work",
                params={"worker_id": "w1", "platforms": "alpha"},
                headers={"X-Worker-Token": token},
            )
            assert response.status_code == 503
            assert response.json()["dependency"] == "redis"
            await proxy.restore()
    finally:
        await proxy.close()
