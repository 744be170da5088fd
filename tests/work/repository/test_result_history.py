"""The per-task done fact in PostgreSQL: two commits of one task write once, whatever
their leases, and the second waits for the first rather than racing it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.core.resources import Resources
from gateway.work.records import ParcelResult
from gateway.work.repository.parcel_results import save_parcels
from tests.support.work import parcel_data

pytestmark = pytest.mark.integration


def _row(task_id: str, lease_id: str, owner: str) -> dict[str, Any]:
    row = ParcelResult.model_validate(parcel_data("p-1", owner_name=owner)).model_dump()
    row.update(task_id=task_id, lease_id=lease_id)
    return row


async def _wait_for_lock_wait(resources: Resources) -> None:
    """Until some backend of this database waits on a lock (generous deadline)."""
    deadline = time.monotonic() + 30
    sql = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while True:
        async with resources.sessionmaker() as session:
            if (await session.execute(sql)).scalar_one() > 0:
                return
        assert time.monotonic() < deadline, "the second commit never waited for the first"
        await asyncio.sleep(0.02)


async def test_two_leases_committing_one_task_at_once_write_it_once(resources: Resources) -> None:
    async with resources.sessionmaker() as first, resources.sessionmaker() as second:
        await first.begin()
        written, _ = await save_parcels(first, [_row("t-1", "lease-a", "A")])
        assert written == {("t-1", "lease-a")}

        async def other_lease() -> set[tuple[str, str]]:
            async with second.begin():
                written, _ = await save_parcels(second, [_row("t-1", "lease-b", "B")])
                return written

        racing = asyncio.create_task(other_lease())
        await _wait_for_lock_wait(resources)  # blocked on the task's done row
        await first.commit()
        assert await racing == set()  # it found the task done: nothing written

    async with resources.sessionmaker() as session:
        history = (await session.execute(sa.text("SELECT lease_id FROM parcel_history"))).all()
        owner = (await session.execute(sa.text("SELECT owner_name FROM parcels"))).scalar_one()
    assert [h.lease_id for h in history] == ["lease-a"]
    assert owner == "A"
