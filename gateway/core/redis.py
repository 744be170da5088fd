"""The process's one Redis connection pool (redis-py asyncio)."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis


def create_redis(url: str, *, max_connections: int) -> Redis:
    """A client on a blocking pool: under load callers wait briefly for a connection
    instead of failing with "Too many connections"."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=15,
        decode_responses=False,
    )
    # from_pool hands ownership to the client, so `aclose()` also disconnects the pool.
    return Redis.from_pool(pool)
