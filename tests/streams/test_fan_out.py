"""Many streams, one Redis reader: clients do not cost Redis connections."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import httpx
import redis.asyncio as aioredis

from gateway.core.settings import Settings
from tests.support.jobs import jobs_harness
from tests.support.streams import open_sse, served

STREAMS = 30


async def named_clients(url: str, name: str) -> list[dict[str, Any]]:
    """The Redis connections of one harness (its pool names them `name`)."""
    async with aioredis.from_url(url) as admin:
        clients: Any = await admin.client_list()
    return [c for c in clients if c.get("name") == name]


async def test_thirty_streams_share_one_feed_reader(settings: Settings) -> None:
    assert settings.redis_url is not None
    name = f"fanout-{uuid.uuid4().hex[:8]}"
    url = f"{settings.redis_url}?client_name={name}"
    async with jobs_harness(settings, redis_url=url) as h:
        key = await h.key(tier="enterprise")
        jobs = [(await h.submit(key, [f"f-{i}"])).json()["id"] for i in range(STREAMS)]
        headers = {"X-API-Key": key}
        async with (
            served(h.public_app) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as web,
            contextlib.AsyncExitStack() as stack,
        ):
            # Each stream's event iterator is kept: a dropped one would close its stream.
            readers = []
            first = await stack.enter_async_context(
                open_sse(web, f"/v1/jobs/{jobs[0]}/events", headers=headers)
            )
            readers.append(first.events())
            assert (await anext(readers[-1])).event == "snapshot"
            before = len(await named_clients(settings.redis_url, name))
            # One at a time, so the pool never needs a connection per opening stream.
            for job_id in jobs[1:]:
                sse = await stack.enter_async_context(
                    open_sse(web, f"/v1/jobs/{job_id}/events", headers=headers)
                )
                assert sse.response.status_code == 200
                readers.append(sse.events())
                assert (await anext(readers[-1])).event == "snapshot"
            after = await named_clients(settings.redis_url, name)
            streams = h.public_app.state.planes["streams"]
            assert streams.hub.following == STREAMS
    # Thirty followers, yet the pool grew by a few connections at most (background loops
    # may take one meanwhile), and one of them reads the feed.
    assert len(after) - before < 5
    assert sum(1 for c in after if c.get("cmd") == "xread") <= 1
