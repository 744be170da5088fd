"""The shared Redis client: idempotent calls survive the stale connections of a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.core.redis import create_redis, idempotent, is_idempotent
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

POOLED = 5


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of this test's own, stopped afterwards."""
    owned = RedisServer(tmp_path / "redis", "--appendonly", "no")
    owned.start()
    yield owned
    owned.stop()


async def _fill_pool(client: Redis) -> None:
    """Open POOLED connections and leave them idle in the pool."""
    # CLIENT ID is answered by each connection itself, so POOLED concurrent calls hold
    # POOLED distinct connections at once.
    await asyncio.gather(*(client.client_id() for _ in range(POOLED)))


def test_idempotence_is_decided_by_command_and_options() -> None:
    assert is_idempotent(("GET", "k"))
    assert is_idempotent(("SET", "k", "v", "EX", 5))
    assert is_idempotent((b"HGETALL", b"k"))
    assert not is_idempotent(("SET", "k", "v", "NX"))  # a repeat would answer "exists"
    assert not is_idempotent(("ZADD", "z", "INCR", 1, "m"))
    assert not is_idempotent(("INCR", "k"))
    assert not is_idempotent(("EVALSHA", "0" * 40, 0))  # scripts only inside idempotent()
    assert not is_idempotent(())


async def test_idempotent_calls_after_a_restart_succeed(server: RedisServer) -> None:
    client = create_redis(server.url, max_connections=POOLED)
    try:
        await client.set("k", "before")
        await _fill_pool(client)
        server.restart()  # every pooled connection now belongs to the old process
        # Without the retry each of these drew a stale connection and failed (a 503).
        replies = await asyncio.gather(*(client.get("k") for _ in range(POOLED)))
        assert replies == [None] * POOLED  # answered by the new, empty server
        assert await client.ping()
    finally:
        await client.aclose()


async def test_scripts_are_not_retried_unless_declared_idempotent(server: RedisServer) -> None:
    client = create_redis(server.url, max_connections=1)
    counter = client.register_script("return redis.call('INCR', KEYS[1])")
    try:
        assert await counter(keys=["n"]) == 1
        server.restart()
        # A lost reply could mean the script ran: repeating it could count twice.
        with pytest.raises(RedisConnectionError):
            await counter(keys=["n"])
        assert await counter(keys=["n"]) == 1  # the failed call reconnected its slot
        server.restart()
        reader = client.register_script("return redis.call('GET', KEYS[1])")
        with idempotent():  # a read-only script: safe to repeat
            assert await reader(keys=["n"]) is None
    finally:
        await client.aclose()
