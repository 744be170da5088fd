"""A Redis outage under an open SSE stream: the stream stays open, and once the process's
feed reader is back it catches up from the job's own stream, even when the feed was
trimmed past its position meanwhile, so the client misses nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from redis.asyncio import Redis

from gateway.core.audience import Audience
from gateway.core.settings import Settings
from gateway.jobs.events import EventKeys, EventPublisher, make_event
from gateway.jobs.models import JobEvent
from tests.support.jobs import jobs_harness
from tests.support.streams import open_sse, served
from tests.support.tcp_proxy import TcpProxy, redis_proxy
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[TcpProxy]:
    assert settings.redis_url is not None
    found, _ = redis_proxy(settings.redis_url)
    await found.start()
    try:
        yield found
    finally:
        await found.close()


@pytest.fixture
async def direct(settings: Settings) -> AsyncIterator[EventPublisher]:
    """A publisher on Redis itself, not through the proxy: another replica, still up."""
    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url)
    try:
        yield EventPublisher(
            redis, EventKeys(settings.redis_key_prefix), stream_max=1000, feed_max=1000
        )
    finally:
        await redis.aclose()


async def test_a_stream_catches_up_after_the_feed_reader_lost_redis(
    settings: Settings, proxy: TcpProxy, direct: EventPublisher
) -> None:
    # Heartbeats rarer than the client's read timeout: a missed event fails the test
    # (ReadTimeout) instead of leaving it waiting on keep-alives.
    async with jobs_harness(settings, redis_url=proxy.url, sse_heartbeat_s=120) as h:
        registry = h.resources.metrics.registry(Audience.PUBLIC)

        def feed_failures() -> float:
            name = "gateway_stream_feed_read_failures_total"
            return registry.get_sample_value(name) or 0.0

        key = await h.key()
        job = (await h.submit(key, ["o-1"])).json()
        (queued,) = await direct.read(job["id"])
        failures_before = feed_failures()
        url = f"/v1/jobs/{job['id']}/events"
        async with (
            served(h.public_app) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as web,
            open_sse(web, url, headers={"X-API-Key": key}) as sse,
        ):
            events = sse.events()
            snapshot = await anext(events)
            seq = int(snapshot.id or 0)
            await proxy.cut()
            await wait_until(lambda: feed_failures() > failures_before, what="a failed read")
            data = {"state": "queued", "progress": queued.data["progress"]}
            missed = [
                make_event(job["id"], queued.owner, s, "job.progress", datetime.now(UTC), data)
                for s in (seq + 1, seq + 2, seq + 3)
            ]
            assert await direct.publish(missed) == 3
            # The feed moved on without this reader: what it missed is only in the
            # job's own stream now.
            await direct.redis.xtrim(direct.keys.feed, maxlen=0, approximate=False)
            await proxy.restore()
            received = [await anext(events) for _ in missed]
            assert [JobEvent.model_validate(e.json()) for e in received] == missed

            # And live events flow through the feed again.
            after = make_event(
                job["id"], queued.owner, seq + 4, "job.progress", datetime.now(UTC), data
            )
            await direct.publish([after])
            assert JobEvent.model_validate((await anext(events)).json()) == after
