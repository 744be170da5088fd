"""Real Redis and PostgreSQL for the test session, isolated per test.

Backends come from `REDIS_URL` / `DATABASE_URL`. When they are unset the session starts
the embedded servers the product itself uses (never under `CI=true`, where a missing or
unreachable backend fails the run instead of skipping).

Isolation: every test session gets its own PostgreSQL database (migrated once), emptied
before each test, and every test its own Redis key prefix, whose keys are deleted
afterwards. Nothing is flushed, so concurrent runs never disturb each other or anything
else using the same servers.

Under pytest-xdist each worker is a test session of its own: its own database (named
after its pid and worker id) and, like every test, its own key prefix. A leftover
database is dropped only when the pid in its name is gone, so a live worker's (or a
concurrent run's) database on the same server is never touched.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from gateway.migrations.runner import upgrade_to_head


class BackendUnavailable(Exception):
    """A configured test backend cannot be reached."""


@dataclass(frozen=True)
class TestBackends:
    """Where the session's Redis and PostgreSQL are."""

    __test__ = False  # a data class, not a test class, despite its name

    redis_url: str
    database_url: str


def worker_id() -> str:
    """The pytest-xdist worker running this process (`gw0`, ...), `main` without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


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


class SessionDatabase:
    """One migrated database per test session, emptied before every test.

    Creating or dropping a PostgreSQL database forces a checkpoint (seconds on a busy
    disk), so each session creates exactly one, named after its pid; before each test
    every table but Alembic's is truncated, which takes milliseconds. Databases left
    behind by a crashed run (whose pid is gone) are dropped at the next start.
    """

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.name = f"gwtest_{os.getpid()}_{worker_id()}_{uuid.uuid4().hex[:6]}"
        self.url = database_url_for(base_url, self.name)

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(_admin_dsn(self.base_url), timeout=10)

    async def drop_stale(self) -> None:
        """Drop test databases of earlier runs whose process no longer exists."""
        conn = await self._admin()
        try:
            rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'gwtest_%'")
            for row in rows:
                match = re.match(r"gwtest_(\d+)_", row["datname"])
                if match and not _pid_alive(int(match.group(1))):
                    await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        finally:
            await conn.close()

    async def create(self) -> None:
        """Create and migrate the session database."""
        await self.drop_stale()
        conn = await self._admin()
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()
        await asyncio.to_thread(upgrade_to_head, self.url)

    async def reset(self) -> None:
        """Empty every application table (Alembic's version table stays)."""
        conn = await asyncpg.connect(_admin_dsn(self.base_url, self.name), timeout=10)
        try:
            tables = await conn.fetch(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) AS t "
                "FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
            if tables:
                names = ", ".join(row["t"] for row in tables)
                # Replica mode skips user triggers, among them the one that refuses to
                # truncate the append-only `audit_log` (tests start from an empty trail).
                await conn.execute("SET session_replication_role = replica")
                await conn.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    async def drop(self) -> None:
        """Drop the session database, disconnecting anyone still on it."""
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
