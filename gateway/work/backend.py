"""Map driver failures to `DependencyUnavailable` (503), naming the backend only.

Driver messages can contain connection URLs, so the original exception is chained for
the log but never rendered to the client.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg  # type: ignore[import-untyped]
import redis.exceptions
import sqlalchemy.exc

from gateway.core.errors import DependencyUnavailable

_DB_DOWN = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)


@contextlib.contextmanager
def redis_guard() -> Iterator[None]:
    """Turn Redis connection failures and timeouts into a 503."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise DependencyUnavailable("redis") from exc


def is_database_down(exc: BaseException) -> bool:
    """Whether `exc` means PostgreSQL is unreachable rather than the statement was bad."""
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _DB_DOWN)


@contextlib.contextmanager
def database_guard() -> Iterator[None]:
    """Turn PostgreSQL connection failures and timeouts into a 503."""
    try:
        yield
    except Exception as exc:
        if is_database_down(exc):
            raise DependencyUnavailable("database") from exc
        raise
