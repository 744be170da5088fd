"""What parcel and party results share: an append-only history unique per (task, lease).

The history row is the proof a result was committed: appending skips a (task, lease)
already there, so a replayed result writes nothing, and only the results actually
appended may move an entity's current row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

Lease = tuple[str, str]  # (task_id, lease_id)


async def append_history(
    session: AsyncSession, history: sa.Table, constraint: str, rows: Sequence[dict[str, Any]]
) -> set[Lease]:
    """Insert history rows, skipping (task, lease) pairs already present; the ones written."""
    stmt = (
        insert(history)
        .on_conflict_do_nothing(constraint=constraint)
        .returning(history.c.task_id, history.c.lease_id)
    )
    return {(r.task_id, r.lease_id) for r in (await session.execute(stmt, list(rows))).all()}


def newest_written(
    rows: Iterable[dict[str, Any]], written: set[Lease], id_field: str
) -> dict[str, dict[str, Any]]:
    """Per entity id, the newest (`scraped_at`) of the rows whose history was written."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if (row["task_id"], row["lease_id"]) not in written:
            continue
        seen = latest.get(row[id_field])
        if seen is None or row["scraped_at"] >= seen["scraped_at"]:
            latest[row[id_field]] = row
    return latest


async def committed_leases(
    session: AsyncSession, history: sa.Table, pairs: Sequence[Lease]
) -> set[Lease]:
    """Which (task_id, lease_id) pairs already have a committed result in `history`."""
    if not pairs:
        return set()
    stmt = sa.select(history.c.task_id, history.c.lease_id).where(
        sa.tuple_(history.c.task_id, history.c.lease_id).in_(list(pairs))
    )
    return {(r.task_id, r.lease_id) for r in (await session.execute(stmt)).all()}
