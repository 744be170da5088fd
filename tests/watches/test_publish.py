"""Live publishing of recorded changes: onto the event feed for the owner's sockets, and
a Redis outage counted and logged, never raised into the results path (the change is
committed already; webhooks and the changes log still have it)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from gateway.core.settings import Settings
from gateway.jobs.events import EventKeys
from gateway.watches.metrics import WatchMetrics, watch_metrics
from gateway.watches.publish import ChangePublisher, watch_key
from gateway.watches.repository.changes import RecordedChange
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

DATA = {
    "watch_id": "wat_" + "a" * 24,
    "platform": "alpha",
    "parcel_id": "p-1",
    "scraped_at": "2026-12-04T01:00:00+00:00",
    "previous_scraped_at": None,
    "task_id": "t-1",
    "changes": {"lien_status": {"old": None, "new": "active"}},
}


def failures(metrics: tuple[WatchMetrics, CollectorRegistry]) -> float | None:
    return metrics[1].get_sample_value("gateway_parcel_change_publish_failures_total")


def counted() -> tuple[WatchMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return watch_metrics(registry), registry


def change(n: int) -> RecordedChange:
    return RecordedChange(n, "key:alice", DATA, datetime(2026, 12, 4, 1, 0, 1, tzinfo=UTC))


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    assert settings.redis_url is not None
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


async def test_changes_go_to_the_feed_addressed_to_their_owner(
    redis: Redis, redis_prefix: str
) -> None:
    keys = EventKeys(redis_prefix)
    metrics = counted()
    await ChangePublisher(redis, keys, feed_max=100, metrics=metrics[0]).publish(
        [change(1), change(2)]
    )
    entries: Any = await redis.xrange(keys.feed)
    assert [fields[b"job"].decode() for _, fields in entries] == [watch_key("key:alice")] * 2
    assert {fields[b"type"] for _, fields in entries} == {b"parcel.changed"}
    assert [json.loads(fields[b"event"])["id"] for _, fields in entries] == ["pc_1", "pc_2"]
    assert failures(metrics) == 0


async def test_a_redis_outage_is_counted_not_raised(redis_prefix: str) -> None:
    down = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    metrics = counted()
    try:
        publisher = ChangePublisher(down, EventKeys(redis_prefix), feed_max=100, metrics=metrics[0])
        await publisher.publish([change(1), change(2), change(3)])
    finally:
        await down.aclose()
    assert failures(metrics) == 3
