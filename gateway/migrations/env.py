"""Alembic environment: async engine, advisory lock, optional schema for isolation."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

# Any 64-bit constant unique to this application; all replicas must agree on it.
MIGRATION_LOCK_ID = 0x6761_7465_7761_7901


def _run(connection: Connection) -> None:
    context.configure(connection=connection, transaction_per_migration=True)
    # Session-level lock, committed at once so Alembic starts from a clean transaction.
    connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    connection.commit()
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()


async def _run_async(url: str) -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Entry point Alembic calls."""
    url = context.config.attributes["database_url"]
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; run `gateway migrate`")
run_migrations_online()
