from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.support.backends import TestBackends


@pytest.fixture
async def backends_redis(backends: TestBackends) -> AsyncIterator[Redis]:
    """A client of the session's real Redis."""
    client = Redis.from_url(backends.redis_url)
    try:
        yield client
    finally:
        await client.aclose()
