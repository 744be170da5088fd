"""Reading client jobs: one job, a page of jobs, a page of a job's items (owner-checked).

A mixin of `JobService` (the state it reads: `sessionmaker`, `queues`), kept apart so the
submission and cancel logic stays readable. Every read hides jobs still `submitting` and
answers 404 for another owner's job, never 403.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.core.errors import NotFound
from gateway.jobs.events import progress_of
from gateway.jobs.models import (
    Credits,
    ItemList,
    ItemOut,
    ItemState,
    JobKind,
    JobList,
    JobOut,
    JobState,
    Progress,
)
from gateway.jobs.owner import Owner
from gateway.jobs.repository import jobs as repo
from gateway.kit.cursor import decode_cursor, decode_cursor_tuple, encode_cursor
from gateway.kit.field_errors import invalid_field
from gateway.kit.outage import database_guard
from gateway.work.queue import WorkQueue


def job_out(row: Any, *, admin: bool = False) -> JobOut:
    """The API shape of a `jobs` row."""
    progress = progress_of(row)
    cost = row.cost_per_item
    return JobOut(
        id=row.id,
        kind=JobKind(row.kind),
        state=JobState(row.state),
        label=row.label,
        priority=row.priority,
        deadline=row.deadline,
        progress=Progress(**progress),
        credits=Credits(
            estimated=cost * row.total,
            charged=cost * row.succeeded,
            reserved=cost * progress["pending"],
        ),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
        state_reason=row.state_reason,
        owner=row.owner if admin else None,
    )


class JobSnapshots:
    """A job's full state and the sequence of its last committed event: where a live
    stream starts (`gateway/streams/follow.py`)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def snapshot(self, owner: Owner, job_id: str) -> tuple[JobOut, int]:
        """One of the owner's jobs and its last event's sequence (404 for anyone else's)."""
        with database_guard():
            async with self.sessionmaker() as session:
                row = await repo.get_job(session, job_id, owner.id)
        if row is None:
            raise NotFound(f"No job {job_id}")
        return job_out(row), int(row.event_seq)

    async def owned(self, owner: Owner, job_ids: Sequence[str]) -> set[str]:
        """Which of `job_ids` are the owner's jobs."""
        with database_guard():
            async with self.sessionmaker() as session:
                return await repo.owned_job_ids(session, owner.id, job_ids)


class JobReads:
    """The read side of `JobService`."""

    sessionmaker: async_sessionmaker[AsyncSession]
    queues: dict[str, WorkQueue]

    async def find_open_upload(self, owner: Owner, sha256: str) -> JobOut | None:
        """The owner's unfinished job created from an upload with this content hash."""
        with database_guard():
            async with self.sessionmaker() as session:
                row = await repo.open_upload(session, owner.id, sha256)
        return None if row is None else job_out(row)

    async def get(self, owner: Owner | None, job_id: str) -> JobOut:
        """One of the owner's jobs (404 for anyone else's); any job when owner is None."""
        with database_guard():
            async with self.sessionmaker() as session:
                row = await repo.get_job(session, job_id, None if owner is None else owner.id)
        if row is None:
            raise NotFound(f"No job {job_id}")
        return job_out(row, admin=owner is None)

    async def list_jobs(
        self,
        owner: Owner | None,
        *,
        states: list[JobState] | None,
        kind: JobKind | None,
        created_after: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> JobList:
        """The owner's jobs (every job when `owner` is None: admins), newest first."""
        before: tuple[datetime, str] | None = None
        if cursor:
            at, last_id = decode_cursor_tuple(cursor, (str, str))
            try:
                before = (datetime.fromisoformat(str(at)), str(last_id))
            except ValueError:
                raise invalid_field("query", "cursor", msg="invalid cursor") from None
        with database_guard():
            async with self.sessionmaker() as session:
                rows = await repo.list_jobs(
                    session,
                    owner=None if owner is None else owner.id,
                    states=[s.value for s in states] if states else None,
                    kind=None if kind is None else kind.value,
                    created_after=created_after,
                    before=before,
                    limit=limit + 1,
                )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (
            encode_cursor((rows[-1].created_at.isoformat(), rows[-1].id)) if more else None
        )
        return JobList(
            items=[job_out(r, admin=owner is None) for r in rows], next_cursor=next_cursor
        )

    async def items(
        self,
        owner: Owner,
        job_id: str,
        *,
        state: ItemState | None,
        limit: int,
        cursor: str | None,
    ) -> ItemList:
        """A page of a job's items, by index; pending items show their task's attempt and
        last error live from the queue."""
        after = int(decode_cursor(cursor, int)) if cursor else -1
        with database_guard():
            async with self.sessionmaker() as session:
                job = await repo.get_job(session, job_id, owner.id)
                if job is None:
                    raise NotFound(f"No job {job_id}")
                rows = await repo.list_items(
                    session,
                    job_id,
                    state=None if state is None else state.value,
                    after=after,
                    limit=limit + 1,
                )
        more = len(rows) > limit
        rows = rows[:limit]
        live = await self._live_tasks(
            job.audience, [r.task_id for r in rows if r.state == "pending" and r.task_id]
        )
        out = []
        for r in rows:
            attempts, last_error = r.attempts, r.last_error
            if r.state == ItemState.PENDING.value and r.task_id in live:
                attempts, last_error = live[r.task_id]
            out.append(
                ItemOut(
                    index=r.idx,
                    platform=r.platform,
                    id=r.key,
                    state=ItemState(r.state),
                    attempts=attempts,
                    last_error=last_error,
                    finished_at=r.finished_at,
                    property_url=(f"/v1/properties/{r.key}" if job.audience == "parcel" else None),
                )
            )
        return ItemList(items=out, next_cursor=encode_cursor(rows[-1].idx) if more else None)

    async def _live_tasks(
        self, audience: str, task_ids: Sequence[str]
    ) -> dict[str, tuple[int | None, str | None]]:
        summaries = await self.queues[audience].task_summaries(task_ids)
        return {
            tid: (summary.attempt, summary.last_error)
            for tid, summary in zip(task_ids, summaries, strict=True)
            if summary is not None
        }
