"""Real Redis and PostgreSQL for the test session, isolated per test.

Backends come from `REDIS_URL` / `DATABASE_URL`. When they are unset the session starts
the embedded servers the product itself uses (never under `CI=true`, where a missing or
unreachable backend fails the run instead of skipping).

Isolation: every test gets its own PostgreSQL database, cloned from a template that was
migrated once per session (`CREATE DATABASE ... TEMPLATE` takes milliseconds), and its own
Redis key prefix, whose keys are deleted afterwards. Nothing is flushed, so runs never
disturb each other or anything else using the same servers.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from gateway.migrations.runner import upgrade_to_head


class BackendUnavailable(Exception):
    """A configured test backend cannot be reached."""


@dataclass(frozen=True)
class TestBackends:
    """Where the session's Redis and PostgreSQL are."""

    redis_url: str
    database_url: str


def _admin_dsn(database_url: str, database: str = "postgres") -> str:
    url = make_url(database_url).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


def database_url_for(base_url: str, database: str) -> str:
    """The session URL pointed at another database on the same server."""
    return make_url(base_url).set(database=database).render_as_string(hide_password=False)


async def check_reachable(backends: TestBackends) -> None:
    """Raise `BackendUnavailable` naming whichever backend does not answer."""
    redis = Redis.from_url(backends.redis_url, socket_connect_timeout=3)
    try:
        await redis.ping()
    except Exception as exc:
        raise BackendUnavailable(f"Redis at {backends.redis_url} is unreachable: {exc}") from exc
    finally:
        await redis.aclose()
    try:
        conn = await asyncpg.connect(_admin_dsn(backends.database_url), timeout=5)
    except Exception as exc:
        raise BackendUnavailable(f"PostgreSQL is unreachable: {type(exc).__name__}: {exc}") from exc
    await conn.close()


class DatabaseFactory:
    """Creates one migrated database per test from a session template."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.template = f"gwtest_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def _admin(self, sql: str) -> None:
        conn = await asyncpg.connect(_admin_dsn(self.base_url), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create_template(self) -> None:
        """Create and migrate the template database."""
        await self._admin(f'CREATE DATABASE "{self.template}"')
        url = database_url_for(self.base_url, self.template)
        await asyncio.to_thread(upgrade_to_head, url)

    async def create(self) -> str:
        """A fresh database cloned from the template; returns its URL."""
        name = f"gwtest_{uuid.uuid4().hex[:12]}"
        await self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return database_url_for(self.base_url, name)

    async def drop(self, url: str) -> None:
        """Drop a test database, disconnecting anyone still on it."""
        name = make_url(url).database
        await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def drop_template(self) -> None:
        """Drop the session template."""
        await self._admin(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


async def delete_prefix(redis_url: str, prefix: str) -> None:
    """Delete every key under a test's prefix."""
    redis = Redis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        async for key in redis.scan_iter(match=prefix + "*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await redis.unlink(*batch)
                batch.clear()
        if batch:
            await redis.unlink(*batch)
    finally:
        await redis.aclose()
