"""Revision `webhooks_0001` creates the webhook tables on its own branch, after the job
tables it depends on (and `webhooks_0003` after the watches' `parcel_changes`, the other
outbox it fans out of), and its downgrade removes only its own tables."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest
from alembic import command

from gateway.migrations.runner import alembic_config, upgrade_to_head
from tests.support.migrations import dsn, tables

pytestmark = pytest.mark.integration

WEBHOOK_TABLES = {"webhook_endpoints", "webhook_deliveries", "webhook_attempts"}


def _branch_length() -> int:
    """Revisions on the webhooks branch (`webhooks_0001`, `webhooks_0002`, ...)."""
    versions = Path(__file__).parents[2] / "gateway" / "migrations" / "versions"
    return len(list(versions.glob("webhooks_*.py")))


async def test_the_webhooks_branch_brings_the_outbox_tables_it_depends_on(
    fresh_database: str,
) -> None:
    config = alembic_config(fresh_database)
    await asyncio.to_thread(command.upgrade, config, "webhooks@head")
    found = await tables(fresh_database)
    assert found >= WEBHOOK_TABLES | {"jobs", "job_events", "parcel_changes"}
    assert "worker_tokens" not in found  # other branches are not needed for it


async def test_upgrade_to_heads_creates_the_tables_and_the_due_index(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    assert await tables(fresh_database) >= WEBHOOK_TABLES
    conn = await asyncpg.connect(dsn(fresh_database))
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


async def test_downgrading_the_branch_drops_only_itstables(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    await asyncio.to_thread(
        command.downgrade, alembic_config(fresh_database), f"webhooks@-{_branch_length()}"
    )
    found = await tables(fresh_database)
    assert not found & WEBHOOK_TABLES
    assert {"jobs", "parcels", "worker_tokens"} <= found
    # And the branch comes back on the next upgrade.
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    assert await tables(fresh_database) >= WEBHOOK_TABLES
