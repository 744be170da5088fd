"""Database sessions for public-plane services, with outages mapped to 503.

An unreachable PostgreSQL while authenticating a key or recording a user is a
dependency outage (503 with `Retry-After`), not a server bug (500).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.core.errors import DependencyUnavailable


@contextlib.asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession], *, write: bool = False
) -> AsyncIterator[AsyncSession]:
    """A session (in a committed transaction when `write`); outages raise 503."""
    try:
        async with sessionmaker() as session:
            if write:
                async with session.begin():
                    yield session
            else:
                yield session
    except (OperationalError, InterfaceError, PoolTimeout, OSError) as exc:
        raise DependencyUnavailable("database") from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DependencyUnavailable("database") from exc
        raise
