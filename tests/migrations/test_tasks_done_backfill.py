"""The `*_tasks_done` revisions mark every task already in history done, by its first
lease, so a task completed before the upgrade is not written again after it."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest
from alembic import command

from gateway.migrations.runner import alembic_config, upgrade_to_head
from tests.support.migrations import dsn

pytestmark = pytest.mark.integration

_HISTORY = {
    "parcel_history": (
        "INSERT INTO parcel_history (parcel_id, state, county, platform, scraped_at, "
        "task_id, lease_id) VALUES ('p-1', 'FL', 'Dade', 'alpha', now(), $1, $2)"
    ),
    "party_history": (
        "INSERT INTO party_history (party_id, platform, scraped_at, data, task_id, lease_id) "
        "VALUES ('y-1', 'alpha', now(), '{}', $1, $2)"
    ),
}


async def test_backfill_marks_each_task_in_history_done_by_its_first_lease(
    fresh_database: str,
) -> None:
    config = alembic_config(fresh_database)
    for before in ("0002_parcels", "wp01_party"):
        await asyncio.to_thread(command.upgrade, config, before)
    conn = await asyncpg.connect(dsn(fresh_database))
    try:
        for insert in _HISTORY.values():
            # t-1 was done twice before the fix (the old window), t-2 once.
            for task_id, lease_id in (("t-1", "first"), ("t-1", "second"), ("t-2", "only")):
                await conn.execute(insert, task_id, lease_id)
        await asyncio.to_thread(upgrade_to_head, fresh_database)
        for table in ("parcel_tasks_done", "party_tasks_done"):
            rows = await conn.fetch(f"SELECT task_id, lease_id FROM {table} ORDER BY task_id")  # noqa: S608
            assert [tuple(r) for r in rows] == [("t-1", "first"), ("t-2", "only")]
    finally:
        await conn.close()
