"""Empty databases of their own for migration tests, and what they hold."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)

from tests.support.backends import TestBackends, database_url_for, worker_id


def dsn(url: str) -> str:
    """An asyncpg DSN of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


@contextlib.asynccontextmanager
async def fresh_database(backends: TestBackends, tag: str) -> AsyncIterator[str]:
    """An empty database (named like the session ones, so leftovers are swept); its URL."""
    name = f"gwtest_{os.getpid()}_{worker_id()}_{tag}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(dsn(database_url_for(backends.database_url, "postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url_for(backends.database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def tables(url: str) -> set[str]:
    """The tables of the database's public schema."""
    conn = await asyncpg.connect(dsn(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()
