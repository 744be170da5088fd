"""Outage guards: the one list of "a dependency is down" exceptions, and what maps them.

A Redis or PostgreSQL outage is a 503 with `Retry-After` (`DependencyUnavailable`), never
a 500; a bad statement or a script bug is a bug and stays loud. Every capability asks
these functions instead of writing its own `except` list, so the planes cannot drift on
what counts as an outage.

Driver messages can contain connection URLs, so the original exception is chained for
the log but never rendered to the client.

Two families, on purpose:
- `REDIS_DOWN` / `is_database_down`: the backend cannot be reached (connection refused or
  reset, timeout, pool exhausted, a replica that became read-only in a failover).
- `REDIS_FAILURE`: any Redis error, for code that *degrades* rather than fails (the
  public cache answers from the origin, the limiter falls back to a local bucket): there
  a wrong reply is no reason to refuse a client either.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

import asyncpg  # type: ignore[import-untyped]
import redis.exceptions
import sqlalchemy.exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.core.errors import DependencyUnavailable

REDIS_DOWN: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    ConnectionError,
    OSError,
    TimeoutError,
)
REDIS_FAILURE: tuple[type[BaseException], ...] = (
    redis.exceptions.RedisError,
    OSError,
    TimeoutError,
)
_DATABASE_DOWN: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,  # the pool had no connection to give in time
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def is_redis_down(exc: BaseException) -> bool:
    """Whether `exc` means Redis is unreachable (not that a command was wrong)."""
    return isinstance(exc, REDIS_DOWN)


def is_database_down(exc: BaseException) -> bool:
    """Whether `exc` means PostgreSQL is unreachable rather than the statement was bad."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _DATABASE_DOWN)


@contextlib.contextmanager
def redis_guard() -> Iterator[None]:
    """Turn Redis connection failures and timeouts into a 503."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise DependencyUnavailable("redis") from exc


@contextlib.contextmanager
def database_guard() -> Iterator[None]:
    """Turn PostgreSQL connection failures and timeouts into a 503."""
    try:
        yield
    except Exception as exc:
        if is_database_down(exc):
            raise DependencyUnavailable("database") from exc
        raise


@contextlib.asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession], *, write: bool = False
) -> AsyncIterator[AsyncSession]:
    """A session (in a committed transaction when `write`); an outage raises a 503."""
    with database_guard():
        async with sessionmaker() as session:
            if write:
                async with session.begin():
                    yield session
            else:
                yield session
