"""Shared resources owned by the process, not by any one app.

The runner opens one Redis pool, one SQLAlchemy engine and one httpx client, hands the
same `Resources` to all three apps, and closes them once after every server stopped.
Apps never open pools of their own; that keeps connection counts predictable
(3 ports do not mean 3 pools) and makes shutdown order explicit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field

import httpx
import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.core.database import create_engine, create_sessionmaker
from gateway.core.observability.metrics import MetricsHub
from gateway.core.redis import create_redis
from gateway.core.redis_persistence import RedisPersistence, enforce, export, read_persistence
from gateway.core.settings import Environment, Settings

log = structlog.get_logger("gateway.resources")

# How long each shared resource gets to close at exit. asyncpg's graceful close waits for
# the server to end the connection, with no deadline: a PostgreSQL that stopped
# answering (a partition, a stalled proxy) would hold the process forever after every
# server stopped. Past the bound the close is cancelled, which makes asyncpg abort the
# socket, and the pool is let go without closing what is left.
CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class BackendUrls:
    """Where Redis and PostgreSQL are, after embedded servers (if any) have started."""

    redis_url: str
    database_url: str


@dataclass
class Resources:
    """Everything the apps share inside one process."""

    settings: Settings
    redis: Redis
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    metrics: MetricsHub
    # What Redis keeps on disk, read at start (gateway/core/redis_persistence.py).
    redis_persistence: RedisPersistence = field(default_factory=lambda: RedisPersistence("unknown"))
    # Set when the process starts shutting down, so long-running handlers (long-polls)
    # can answer early instead of holding the graceful shutdown for their full wait.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def key(self, *parts: str) -> str:
        """A Redis key under this deployment's prefix."""
        return self.settings.redis_key_prefix + ":".join(parts)


def create_http_client(settings: Settings) -> httpx.AsyncClient:
    """The shared outbound client, with explicit timeouts and pool limits."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(connect=2.0, read=10.0, write=10.0, pool=2.0),
        limits=httpx.Limits(
            max_connections=settings.http_max_connections,
            max_keepalive_connections=settings.http_max_connections // 2,
        ),
        follow_redirects=False,
    )


async def check_redis_persistence(settings: Settings, redis: Redis) -> RedisPersistence:
    """Read Redis's persistence (within the ready timeout) and apply the production rule."""
    try:
        async with asyncio.timeout(settings.ready_timeout_s):
            persistence = await read_persistence(redis)
    except TimeoutError:
        persistence = RedisPersistence("unknown", source="none")
    enforce(
        persistence,
        production=settings.environment is Environment.PRODUCTION,
        allow_volatile=settings.redis_allow_volatile,
    )
    return persistence


@contextlib.asynccontextmanager
async def open_resources(settings: Settings, urls: BackendUrls) -> AsyncIterator[Resources]:
    """Create the shared resources and close each of them exactly once on exit."""
    redis = create_redis(urls.redis_url, max_connections=settings.redis_pool_size)
    engine = create_engine(
        urls.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout_s=settings.database_pool_timeout_s,
        command_timeout_s=settings.database_command_timeout_s,
    )
    http = create_http_client(settings)
    resources = Resources(
        settings=settings,
        redis=redis,
        engine=engine,
        sessionmaker=create_sessionmaker(engine),
        http=http,
        metrics=MetricsHub(commit=settings.build_commit),
    )
    resources.metrics.watch_pools(redis, engine)
    try:
        resources.redis_persistence = await check_redis_persistence(settings, redis)
        export(resources.metrics.process, resources.redis_persistence)
        yield resources
    finally:
        await _close_within("http", http.aclose())
        await _close_within("redis", redis.aclose())
        # A close cut short makes SQLAlchemy's pool log each aborted connection with a
        # traceback; at exit the one `close_timed_out` line says all there is to say.
        with _silenced("sqlalchemy.pool"):
            if not await _close_within("database", engine.dispose()):
                await engine.dispose(close=False)


@contextlib.contextmanager
def _silenced(logger_name: str) -> Iterator[None]:
    # A level, not `disabled`: the pool logs through child loggers (one per pool class).
    logger = logging.getLogger(logger_name)
    was = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(was)


async def _close_within(name: str, closing: Awaitable[None]) -> bool:
    """Await one resource's close for at most `CLOSE_TIMEOUT_S`; False when cut short."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await closing
    except TimeoutError:
        log.warning("close_timed_out", resource=name, timeout_s=CLOSE_TIMEOUT_S)
        return False
    return True
