"""The SQLAlchemy async engine and session factory (asyncpg driver).

Every database call is bounded, so a partitioned PostgreSQL (packets dropped, nothing
refused) fails calls with a 503 instead of hanging them for the whole partition:

- connecting: asyncpg's connect `timeout` (3 s);
- waiting for a pooled connection: `pool_timeout` (`DATABASE_POOL_TIMEOUT_S`);
- every statement, the pre-ping and COMMIT included: asyncpg's `command_timeout`
  (`DATABASE_COMMAND_TIMEOUT_S`). Without it a COMMIT in flight waits on TCP for as long
  as the partition lasts. The same bound goes to the server as `statement_timeout`, so
  PostgreSQL also gives up a statement whose client stopped waiting for it.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def async_database_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` URLs and select the asyncpg driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def create_engine(
    url: str,
    *,
    pool_size: int,
    max_overflow: int,
    pool_timeout_s: float = 5.0,
    command_timeout_s: float = 15.0,
) -> AsyncEngine:
    """Create the process's one engine; `pool_pre_ping` survives a PostgreSQL restart."""
    return create_async_engine(
        async_database_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_timeout=pool_timeout_s,
        connect_args={
            # asyncpg's own timeout for establishing a connection: a dead server must
            # fail fast enough for /ready and for results to answer 503 promptly.
            "timeout": 3,
            "command_timeout": command_timeout_s,
            "server_settings": {"statement_timeout": str(round(command_timeout_s * 1000))},
        },
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions keep loaded attributes after commit so responses can be built from them."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Run `SELECT 1` on a pooled connection."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
