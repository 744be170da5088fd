"""The SQLAlchemy async engine and session factory (asyncpg driver)."""

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


def create_engine(url: str, *, pool_size: int, max_overflow: int) -> AsyncEngine:
    """Create the process's one engine; `pool_pre_ping` survives a PostgreSQL restart."""
    return create_async_engine(
        async_database_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_timeout=5,
        # asyncpg's own timeout for establishing a connection: a dead server must fail
        # fast enough for /ready and for results to answer 503 promptly.
        connect_args={"timeout": 3},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions keep loaded attributes after commit so responses can be built from them."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Run `SELECT 1` on a pooled connection."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
