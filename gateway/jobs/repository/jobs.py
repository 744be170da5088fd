"""SQL of jobs: create, link, move items, cancel or expire, read, list.

The statements that move items are the heart of progress accounting. Each moves items out
of `pending` (`WHERE state = 'pending'`, so a second move of the same item finds nothing:
exactly once, also under concurrent movers, which serialise on the item rows) and adds
what it moved to the job's counters in the same statement. The job's new counters, state
and sequence number are computed in the UPDATE's SET from the row itself, never from a
value read earlier: under concurrent updates of one job, PostgreSQL re-evaluates SET
against the newest row version after the lock wait, so no increment is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.jobs.models import Item, ItemState, JobState
from gateway.jobs.repository.tables import job_events, job_items, jobs
from gateway.work.repository.parcel_results import parcel_tasks_done
from gateway.work.repository.party_results import party_tasks_done

OPEN_STATES = ("queued", "running")
# Where each audience's results are marked done (the worker plane's tables).
DONE_TABLES = {"parcel": parcel_tasks_done, "party": party_tasks_done}
TERMINAL_STATES = ("completed", "partially_failed", "failed", "cancelled", "expired")

# What every statement that changes a job returns: the whole row (events and answers).
_RETURNING = "*"


@dataclass(frozen=True)
class ItemMove:
    """One task's outcome for the items waiting on it."""

    task_id: str
    error: str | None = None
    attempts: int | None = None


async def insert_job(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert a job row (state `submitting`)."""
    await session.execute(sa.insert(jobs).values(**values))


async def insert_items(
    session: AsyncSession, job_id: str, items: Sequence[Item], task_ids: Sequence[str]
) -> None:
    """Insert a job's items, each linked to the task expected to carry it, with COPY (a
    100,000-item job is one round trip's worth)."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    await driver.copy_records_to_table(
        "job_items",
        records=[
            (job_id, i, item.platform, item.key, task_id, "pending")
            for i, (item, task_id) in enumerate(zip(items, task_ids, strict=True))
        ],
        columns=["job_id", "idx", "platform", "key", "task_id", "state"],
    )


async def link_items(
    session: AsyncSession, job_id: str, idxs: Sequence[int], task_ids: Sequence[str]
) -> None:
    """Record which task carries each item."""
    await session.execute(
        sa.text(
            "UPDATE job_items AS i SET task_id = v.task_id"
            " FROM unnest(CAST(:idxs AS int[]), CAST(:tids AS text[])) AS v(idx, task_id)"
            " WHERE i.job_id = :job AND i.idx = v.idx"
        ),
        {"job": job_id, "idxs": list(idxs), "tids": list(task_ids)},
    )


async def lock_submitting(session: AsyncSession, job_id: str) -> Any | None:
    """The job's row, locked, while it is still `submitting` (None: rolled back)."""
    stmt = (
        sa.select(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == JobState.SUBMITTING.value)
        .with_for_update()
    )
    return (await session.execute(stmt)).first()


async def finish_submission(session: AsyncSession, job_id: str, check_at: datetime) -> Any:
    """`submitting` -> queued, running or finished, by the items results already moved;
    `event_seq` advances by the events that produces (`changes.submission_events`)."""
    moved = "(succeeded + failed)"
    done = "(succeeded + failed + cancelled + expired) = total"
    result = await session.execute(
        sa.text(
            "UPDATE jobs SET"  # noqa: S608 - fixed names only; values are bound
            f" state = CASE WHEN {done} THEN (CASE WHEN succeeded = total THEN 'completed'"
            "   WHEN succeeded = 0 THEN 'failed' ELSE 'partially_failed' END)"
            f"  WHEN {moved} > 0 THEN 'running' ELSE 'queued' END,"
            f" event_seq = event_seq + 1 + CASE WHEN {moved} > 0 THEN 1 ELSE 0 END"
            f"  + CASE WHEN {done} THEN 1 ELSE 0 END,"
            f" finished_at = CASE WHEN {done} THEN now() END,"
            f" check_at = CASE WHEN {done} THEN NULL ELSE CAST(:check_at AS timestamptz) END,"
            " publish_check_at = now() + interval '5 seconds', updated_at = now()"
            " WHERE id = :job AND state = 'submitting' RETURNING *"
        ),
        {"job": job_id, "check_at": check_at},
    )
    return result.one()


async def lock_waiting_jobs(
    session: AsyncSession, task_ids: Sequence[str], only_job: str | None = None
) -> list[str]:
    """Lock, in id order, the jobs with pending items on these tasks; their ids.

    Every path that moves items takes its jobs' row locks first, in id order, and only
    then touches their items (results, dead letters, cancel, expiry, reconcile), so two
    of them can wait on each other's job rows but never deadlock.
    """
    where = "" if only_job is None else " AND job_id = :only"
    result = await session.execute(
        sa.text(
            "SELECT id FROM jobs WHERE id IN (SELECT job_id FROM job_items"  # noqa: S608 - fixed names only; values are bound
            f" WHERE task_id = ANY(CAST(:tids AS text[])) AND state = 'pending'{where})"
            " ORDER BY id FOR UPDATE"
        ),
        {"tids": list(task_ids), "only": only_job},
    )
    return list(result.scalars().all())


async def move_items(
    session: AsyncSession,
    state: ItemState,
    moves: Sequence[ItemMove],
    only_job: str | None = None,
) -> list[Any]:
    """Move the pending items waiting on these tasks to `state` (succeeded or failed) and
    their jobs' counters; the changed jobs (new counters, state, last seq, `moved`).

    `only_job` limits the move to one job's items (the reconciler, which already holds
    that job's lock and must not wait for another's). Items of a job linked to one of
    these tasks after the jobs were locked are left pending for that job's reconcile.
    """
    if not moves:
        return []
    locked = await lock_waiting_jobs(session, [m.task_id for m in moves], only_job)
    if not locked:
        return []
    succeeded = state is ItemState.SUCCEEDED
    done = "(j.succeeded + j.failed + j.cancelled + j.expired + c.n) = j.total"  # all items out
    new_succeeded = "j.succeeded + c.n" if succeeded else "j.succeeded"
    result = await session.execute(
        sa.text(
            "WITH moved AS ("  # noqa: S608 - fixed names only; values are bound
            "  UPDATE job_items AS i SET state = :state, finished_at = now(),"
            "    last_error = v.error, attempts = v.attempts"
            "  FROM unnest(CAST(:tids AS text[]), CAST(:errors AS text[]),"
            "    CAST(:attempts AS int[])) AS v(task_id, error, attempts)"
            "  WHERE i.task_id = v.task_id AND i.state = 'pending'"
            "    AND i.job_id = ANY(CAST(:jobs AS text[]))"
            "  RETURNING i.job_id"
            "), c AS (SELECT job_id, count(*)::int AS n FROM moved GROUP BY job_id)"
            " UPDATE jobs AS j SET"
            f"  {'succeeded' if succeeded else 'failed'} ="
            f"    j.{'succeeded' if succeeded else 'failed'} + c.n,"
            # A job still `submitting` keeps its state and emits nothing: its counters
            # move (the item is done), and finishing the submission reports them.
            "  state = CASE WHEN j.state = 'submitting' THEN 'submitting'"
            f"    WHEN NOT {done} THEN 'running'"
            f"    WHEN {new_succeeded} = j.total THEN 'completed'"
            f"    WHEN {new_succeeded} = 0 THEN 'failed' ELSE 'partially_failed' END,"
            "  event_seq = j.event_seq + CASE WHEN j.state = 'submitting' THEN 0"
            f"    WHEN {done} THEN 2 ELSE 1 END,"
            "  started_at = coalesce(j.started_at, now()),"
            f"  finished_at = CASE WHEN j.state <> 'submitting' AND {done} THEN now()"
            "    ELSE j.finished_at END,"
            f"  check_at = CASE WHEN j.state <> 'submitting' AND {done} THEN NULL"
            "    ELSE j.check_at END,"
            "  publish_check_at = CASE WHEN j.state = 'submitting' THEN j.publish_check_at"
            "    ELSE coalesce(j.publish_check_at, now() + interval '5 seconds') END,"
            # The statement's clock, not the transaction's start: `updated_at` is the
            # time of the job's events, and a results transaction can take a while.
            "  updated_at = clock_timestamp()"
            " FROM c WHERE j.id = c.job_id RETURNING j.*,"
            " c.n AS moved"
        ),
        {
            "state": state.value,
            "jobs": locked,
            "tids": [m.task_id for m in moves],
            "errors": [m.error for m in moves],
            "attempts": [m.attempts for m in moves],
        },
    )
    return list(result.all())


async def lock_open_job(
    session: AsyncSession, job_id: str, owner: str | None, *, skip_locked: bool = False
) -> Any | None:
    """The job's row, locked (None: unknown, another owner's, or still submitting)."""
    stmt = sa.select(jobs).where(jobs.c.id == job_id, jobs.c.state != JobState.SUBMITTING.value)
    if owner is not None:
        stmt = stmt.where(jobs.c.owner == owner)
    stmt = stmt.with_for_update(skip_locked=skip_locked)
    return (await session.execute(stmt)).first()


async def close_job(
    session: AsyncSession, job_id: str, state: JobState, reason: str | None
) -> tuple[Any, list[str]]:
    """End an open job as cancelled, expired or failed: its pending items take that
    outcome; the job row after the change and the task ids its items waited on."""
    item_state = {
        JobState.CANCELLED: ItemState.CANCELLED,
        JobState.EXPIRED: ItemState.EXPIRED,
        JobState.FAILED: ItemState.FAILED,
    }[state]
    counter = {
        ItemState.CANCELLED: "cancelled",
        ItemState.EXPIRED: "expired",
        ItemState.FAILED: "failed",
    }[item_state]
    moved = await session.execute(
        sa.text(
            "UPDATE job_items SET state = :state, finished_at = now(), last_error = :error"
            " WHERE job_id = :job AND state = 'pending' RETURNING task_id"
        ),
        {
            "job": job_id,
            "state": item_state.value,
            "error": reason if item_state is ItemState.FAILED else None,
        },
    )
    rows = moved.all()
    task_ids = [t for (t,) in rows if t is not None]
    count = len(rows)
    row = (
        await session.execute(
            sa.text(
                f"UPDATE jobs SET {counter} = {counter} + :n, state = :state,"  # noqa: S608 - fixed names only; values are bound
                " finished_at = now(), updated_at = now(), event_seq = event_seq + 1,"
                " check_at = NULL, state_reason = :reason,"
                " publish_check_at = coalesce(publish_check_at, now() + interval '5 seconds')"
                f" WHERE id = :job RETURNING {_RETURNING}"
            ),
            {"job": job_id, "n": count, "state": state.value, "reason": reason},
        )
    ).one()
    return row, task_ids


async def insert_events(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Append events to the outbox (same transaction as the change they describe)."""
    if rows:
        await session.execute(sa.insert(job_events), list(rows))


async def events_after(session: AsyncSession, job_id: str, after: int) -> list[Any]:
    """A job's events with seq above `after`, in order."""
    stmt = (
        sa.select(job_events)
        .where(job_events.c.job_id == job_id, job_events.c.seq > after)
        .order_by(job_events.c.seq)
    )
    return list((await session.execute(stmt)).all())


async def get_job(session: AsyncSession, job_id: str, owner: str | None) -> Any | None:
    """A visible job (not `submitting`) of `owner` (any owner when None)."""
    stmt = sa.select(jobs).where(jobs.c.id == job_id, jobs.c.state != JobState.SUBMITTING.value)
    if owner is not None:
        stmt = stmt.where(jobs.c.owner == owner)
    return (await session.execute(stmt)).first()


async def owned_job_ids(session: AsyncSession, owner: str, job_ids: Sequence[str]) -> set[str]:
    """Which of `job_ids` are visible jobs (not `submitting`) of `owner`."""
    stmt = sa.select(jobs.c.id).where(
        jobs.c.owner == owner,
        jobs.c.id.in_(list(job_ids)),
        jobs.c.state != JobState.SUBMITTING.value,
    )
    return set((await session.execute(stmt)).scalars())


async def open_upload(session: AsyncSession, owner: str, sha256: str) -> Any | None:
    """The owner's newest open job created from an upload with this content hash."""
    stmt = (
        sa.select(jobs)
        .where(
            jobs.c.owner == owner,
            jobs.c.upload_sha256 == sha256,
            jobs.c.state.in_(OPEN_STATES),
        )
        .order_by(jobs.c.created_at.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).first()


async def list_jobs(
    session: AsyncSession,
    *,
    owner: str | None,
    states: Sequence[str] | None,
    kind: str | None,
    created_after: datetime | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Any]:
    """Jobs newest first (keyset on created_at, id), at most `limit`."""
    stmt = sa.select(jobs).where(jobs.c.state != JobState.SUBMITTING.value)
    if owner is not None:
        stmt = stmt.where(jobs.c.owner == owner)
    if states:
        stmt = stmt.where(jobs.c.state.in_(list(states)))
    if kind is not None:
        stmt = stmt.where(jobs.c.kind == kind)
    if created_after is not None:
        stmt = stmt.where(jobs.c.created_at > created_after)
    if before is not None:
        stmt = stmt.where(sa.tuple_(jobs.c.created_at, jobs.c.id) < sa.tuple_(*before))
    stmt = stmt.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
    return list((await session.execute(stmt)).all())


async def list_items(
    session: AsyncSession, job_id: str, *, state: str | None, after: int, limit: int
) -> list[Any]:
    """A job's items by index after `after`, at most `limit`."""
    stmt = sa.select(job_items).where(job_items.c.job_id == job_id, job_items.c.idx > after)
    if state is not None:
        stmt = stmt.where(job_items.c.state == state)
    stmt = stmt.order_by(job_items.c.idx).limit(limit)
    return list((await session.execute(stmt)).all())


async def pending_linked(session: AsyncSession, job_id: str, after: int, limit: int) -> list[Any]:
    """Pending items with a task, by index after `after` (the reconciler's page)."""
    stmt = (
        sa.select(job_items.c.idx, job_items.c.platform, job_items.c.key, job_items.c.task_id)
        .where(
            job_items.c.job_id == job_id,
            job_items.c.idx > after,
            job_items.c.state == ItemState.PENDING.value,
            job_items.c.task_id.is_not(None),
        )
        .order_by(job_items.c.idx)
        .limit(limit)
    )
    return list((await session.execute(stmt)).all())


async def all_items(session: AsyncSession, job_id: str) -> list[Any]:
    """Every item's platform and key (rolling back a submission)."""
    stmt = sa.select(job_items.c.platform, job_items.c.key).where(job_items.c.job_id == job_id)
    return list((await session.execute(stmt)).all())


async def delete_job(session: AsyncSession, job_id: str) -> None:
    """Delete a job and (cascade) its items and events."""
    await session.execute(sa.delete(jobs).where(jobs.c.id == job_id))


async def claim_due(session: AsyncSession, column: str, limit: int, extra: str = "") -> list[Any]:
    """Lock up to `limit` jobs whose `column` (a due time) has passed, skipping those
    another replica holds."""
    result = await session.execute(
        sa.text(
            f"SELECT * FROM jobs WHERE {column} <= now() {extra}"  # noqa: S608 - fixed names only; values are bound
            f" ORDER BY {column} LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"limit": limit},
    )
    return list(result.all())


async def set_columns(session: AsyncSession, job_id: str, **values: Any) -> None:
    """Update some columns of one job."""
    await session.execute(sa.update(jobs).where(jobs.c.id == job_id).values(**values))


async def claim_stuck(session: AsyncSession, older_than_s: float, limit: int) -> list[Any]:
    """Lock submissions older than `older_than_s` (their gateway died mid-way)."""
    result = await session.execute(
        sa.text(
            "SELECT * FROM jobs WHERE state = 'submitting'"
            " AND created_at <= now() - make_interval(secs => :age)"
            " ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"age": older_than_s, "limit": limit},
    )
    return list(result.all())
