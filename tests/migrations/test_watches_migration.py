"""Revision `watches_0001` creates the watch tables on its own branch, after the parcel
table whose rows it compares, and its downgrade removes only its own tables."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest
from alembic import command

from gateway.migrations.runner import alembic_config, upgrade_to_head
from tests.support.migrations import dsn, tables

pytestmark = pytest.mark.integration

WATCH_TABLES = {"parcel_watches", "parcel_watch_items", "parcel_changes"}


async def test_the_watches_branch_brings_the_parcel_table_it_depends_on(
    fresh_database: str,
) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(fresh_database), "watches@head")
    found = await tables(fresh_database)
    assert found >= WATCH_TABLES | {"parcels"}
    assert "jobs" not in found  # other branches are not needed for it


async def test_deleting_a_watch_deletes_its_items_and_changes(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    conn = await asyncpg.connect(dsn(fresh_database))
    try:
        await conn.execute(
            "INSERT INTO parcel_watches (id, owner, platform, fields, parcel_count)"
            " VALUES ('wat_1', 'o', 'alpha', '{lien_status}', 1)"
        )
        await conn.execute("INSERT INTO parcel_watch_items VALUES ('p-1', 'wat_1')")
        await conn.execute(
            "INSERT INTO parcel_changes (watch_id, owner, platform, parcel_id, data)"
            " VALUES ('wat_1', 'o', 'alpha', 'p-1', '{}')"
        )
        pending = await conn.fetchval("SELECT webhooks_pending FROM parcel_changes")
        assert pending is True  # a new change waits for the webhook fan-out
        await conn.execute("DELETE FROM parcel_watches")
        assert await conn.fetchval("SELECT count(*) FROM parcel_watch_items") == 0
        assert await conn.fetchval("SELECT count(*) FROM parcel_changes") == 0
    finally:
        await conn.close()


async def test_downgrading_the_branch_drops_only_its_tables(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    await asyncio.to_thread(command.downgrade, alembic_config(fresh_database), "watches@-1")
    found = await tables(fresh_database)
    assert not found & WATCH_TABLES
    assert {"jobs", "parcels", "webhook_endpoints"} <= found
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    assert await tables(fresh_database) >= WATCH_TABLES
