"""What parcel and party results share: the per-task "done" fact and the history.

Completion is a fact per task (`<audience>_tasks_done`, primary key `task_id`), inserted
with `ON CONFLICT DO NOTHING` in the same transaction as the records: only the results
whose task that insert newly marked done are written at all, so a second result for a
task, from the same lease or any other, writes nothing, and concurrent commits of one
task serialise on the primary key (the second waits, then finds the row). The history
stays unique per (task, lease) as a second guard, and only the results actually appended
may move an entity's current row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

Lease = tuple[str, str]  # (task_id, lease_id)


def tasks_done_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The done-fact table of one audience (0003_parcel_tasks_done, wp03_party_tasks_done)."""
    return sa.Table(
        name,
        metadata,
        sa.Column("task_id", sa.Text, primary_key=True),
        sa.Column("lease_id", sa.Text),
        sa.Column("done_at", sa.DateTime(timezone=True)),
    )


async def mark_done(session: AsyncSession, done: sa.Table, leases: Sequence[Lease]) -> set[Lease]:
    """Record each task as done by its lease; the (task, lease) pairs newly marked.

    A task already done (by any lease) is skipped. Rows go in task-id order so two
    batches that overlap take the row locks in the same order and cannot deadlock.
    """
    if not leases:
        return set()
    stmt = (
        insert(done)
        .on_conflict_do_nothing(index_elements=[done.c.task_id])
        .returning(done.c.task_id, done.c.lease_id)
    )
    rows = [{"task_id": t, "lease_id": lid} for t, lid in sorted(leases)]
    return {(r.task_id, r.lease_id) for r in (await session.execute(stmt, rows)).all()}


async def done_tasks(session: AsyncSession, done: sa.Table, task_ids: Iterable[str]) -> set[str]:
    """Which of `task_ids` have a committed result (from any lease)."""
    ids = sorted(set(task_ids))
    if not ids:
        return set()
    stmt = sa.select(done.c.task_id).where(done.c.task_id.in_(ids))
    return set((await session.execute(stmt)).scalars().all())


async def record_done(
    session: AsyncSession,
    done: sa.Table,
    history: sa.Table,
    constraint: str,
    rows: Sequence[dict[str, Any]],
) -> set[Lease]:
    """Mark the rows' tasks done, append history for those newly done; the pairs written."""
    newly = await mark_done(session, done, [(r["task_id"], r["lease_id"]) for r in rows])
    fresh = [r for r in rows if (r["task_id"], r["lease_id"]) in newly]
    if not fresh:
        return set()
    return await append_history(session, history, constraint, fresh)


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
