"""Revision `webhooks_0001` creates the webhook tables on its own branch, after the job
tables it depends on (and `webhooks_0003` after the watches' `parcel_changes`, the other
outbox it fans out of), and its downgrade removes only its own tables."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest
from alembic import command

from gateway.migrations.runner import alembic_config, upgrade_to_head
from tests.support.backends import TestBackends, database_url_for, worker_id

pytestmark = pytest.mark.integration

WEBHOOK_TABLES = {"webhook_endpoints", "webhook_deliveries", "webhook_attempts"}


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture
async def fresh_database(backends: TestBackends) -> AsyncIterator[str]:
    """An empty database of its own (named like the session ones, so leftovers are swept)."""
    name = f"gwtest_{os.getpid()}_{worker_id()}_whmig_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(_dsn(database_url_for(backends.database_url, "postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield database_url_for(backends.database_url, name)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _branch_length() -> int:
    """Revisions on the webhooks branch (`webhooks_0001`, `webhooks_0002`, ...)."""
    versions = Path(__file__).parents[2] / "gateway" / "migrations" / "versions"
    return len(list(versions.glob("webhooks_*.py")))


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_the_webhooks_branch_brings_the_outbox_tables_it_depends_on(
    fresh_database: str,
) -> None:
    config = alembic_config(fresh_database)
    await asyncio.to_thread(command.upgrade, config, "webhooks@head")
    tables = await _tables(fresh_database)
    assert tables >= WEBHOOK_TABLES | {"jobs", "job_events", "parcel_changes"}
    assert "worker_tokens" not in tables  # other branches are not needed for it


async def test_upgrade_to_heads_creates_the_tables_and_the_due_index(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    assert await _tables(fresh_database) >= WEBHOOK_TABLES
    conn = await asyncpg.connect(_dsn(fresh_database))
    try:
        due = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_webhook_deliveries_due'"
        )
        assert "WHERE (state = 'pending'::text)" in due
        # An endpoint without events is refused by the database too.
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO webhook_endpoints (id, owner, url, events, secret)"
                " VALUES ('wh_1', 'o', 'https://x', '{}', 's')"
            )
    finally:
        await conn.close()


async def test_downgrading_the_branch_drops_only_its_tables(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    await asyncio.to_thread(
        command.downgrade, alembic_config(fresh_database), f"webhooks@-{_branch_length()}"
    )
    tables = await _tables(fresh_database)
    assert not tables & WEBHOOK_TABLES
    assert {"jobs", "parcels", "worker_tokens"} <= tables
    # And the branch comes back on the next upgrade.
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    assert await _tables(fresh_database) >= WEBHOOK_TABLES
