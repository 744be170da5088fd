"""Follower leases are refreshed while their connections live, and only those."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.streams.caps import LEASE_S, StreamCaps
from tests.support.backends import TestBackends


@pytest.fixture
async def redis(backends: TestBackends) -> AsyncIterator[Redis]:
    client = Redis.from_url(backends.redis_url)
    yield client
    await client.aclose()


async def test_refresh_extends_every_live_lease_and_its_sets(
    redis: Redis, redis_prefix: str
) -> None:
    caps = StreamCaps(redis, redis_prefix, per_job=5, per_principal=5)
    owner, job_a, job_b = caps.principal_place("o"), caps.job_place("a"), caps.job_place("b")
    first = await caps.take([owner, job_a])
    second = await caps.take([owner, job_a])
    third = await caps.take([owner, job_b])
    gone = await caps.take([owner, job_b])
    await caps.give_back(gone)
    # Make every lease and set look about to lapse, as they would after LEASE_S - 1 s.
    soon = int(time.time() * 1000) + 1000
    for lease in (first, second, third):
        for key in lease.keys:
            await redis.zadd(key, {lease.member: soon}, xx=True)
            await redis.pexpireat(key, soon)

    before = int(time.time() * 1000)
    await caps.refresh()

    lapse_at_least = before + int(LEASE_S * 1000)
    for lease in (first, second, third):
        for key in lease.keys:
            score = await redis.zscore(key, lease.member)
            assert score is not None
            assert score >= lapse_at_least
            assert await redis.pexpiretime(key) >= lapse_at_least
    # A lease given back is not brought back by the refresh.
    assert await redis.zscore(owner.key, gone.member) is None
    assert await redis.zscore(job_b.key, gone.member) is None
