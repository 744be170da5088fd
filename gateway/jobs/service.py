"""Client jobs: submit, read, list, cancel (the logic behind `/v1/jobs`, admin and CLI).

A submission is all or nothing, across a crash of the gateway at any point:

1. one transaction admits it (budget, open jobs: `budget.py`, owner row locked) and
   inserts the job as `submitting` (invisible to its owner) with its items, each linked
   to the task *expected* to carry it (the live task of its (platform, key), else the id
   a new one will get), so from this commit on the results hook finds every item whose
   task completes, even before the submission is finished;
2. the items are attached to the audience's queue in chunks (`WorkQueue.attach`): an item
   whose (platform, key) is already queued or leased, by another job or a producer, adds
   this job as a waiter on that task, so one scrape completes every job waiting for it;
   otherwise a task is created with this job as its waiter;
3. a second transaction, holding the job's row lock, re-links the items whose task
   turned out otherwise (the live task completed or another appeared in between: rare),
   settles those already done, and ends `submitting` with the events for what already
   happened (`job.queued`, then progress and the terminal event if results came first).

If step 2 fails (Redis down) the submission is undone at once (waiters released, rows
deleted) and the caller gets a 503. If the process dies between 1 and 3, any replica's
upkeep loop rolls the job back after JOB_SUBMIT_TIMEOUT_S, the same way: the caller never
saw a 201, so the job must not appear later. A job is therefore either fully recorded with
all its tasks queued, or not at all. Attaching is idempotent (a waiter is a field of the
task hash), and releasing is by (platform, key), so a rollback after a partial attach
finds exactly the tasks it attached.

Cancel (and expiry, and an admin's forced end) closes the job's pending items in one
transaction, then releases its waiters: a task no one else waits for is removed from the
queue, or, when leased, marked cancelled so its worker hears `lost` in its next heartbeat
(a Celery lease is ended at once and its Celery task revoked: `routing/revoke.py`).
A result that still arrives is stored (data is data) and moves no closed job.

An admin's close (no owner) is audited in the closing transaction; it must name its
`actor`, so no admin path can end someone's job without a row in the audit trail.
"""

from __future__ import annotations

import os
import secrets
import signal
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.actions import Action
from gateway.audit.actor import Actor
from gateway.audit.service import AuditLog
from gateway.core.errors import Conflict, DependencyUnavailable, NotFound
from gateway.core.resources import Resources
from gateway.core.settings.jobs import JobSettings
from gateway.jobs.budget import JobBudget
from gateway.jobs.changes import record, state_event, submission_events
from gateway.jobs.events import EventPublisher
from gateway.jobs.metrics import JobMetrics
from gateway.jobs.models import (
    Estimate,
    Item,
    ItemState,
    JobCreated,
    JobEvent,
    JobKind,
    JobOut,
    JobState,
)
from gateway.jobs.owner import Owner
from gateway.jobs.platforms import known_platforms
from gateway.jobs.reading import JobReads, job_out
from gateway.jobs.repository import jobs as repo
from gateway.jobs.spec import JobSpec
from gateway.kit.field_errors import invalid_field
from gateway.kit.outage import REDIS_DOWN, database_guard, redis_guard
from gateway.work.models import TaskIn
from gateway.work.queue import WorkQueue
from gateway.work.repository.result_history import done_tasks
from gateway.work.routing.revoke import CeleryRevoker

log = structlog.get_logger("gateway.jobs.service")


def new_job_id() -> str:
    """A fresh job id (`job_` and 24 hex digits, 96 random bits)."""
    return "job_" + secrets.token_hex(12)


class JobService(JobReads):
    """Jobs of every owner; each call is checked against its owner (another's is a 404)."""

    def __init__(
        self,
        resources: Resources,
        queues: dict[str, WorkQueue],
        budget: JobBudget,
        publisher: EventPublisher,
        metrics: JobMetrics,
        revoker: CeleryRevoker | None = None,
    ) -> None:
        self.resources = resources
        self.revoker = revoker
        self.sessionmaker: async_sessionmaker[AsyncSession] = resources.sessionmaker
        self.audit = AuditLog(self.sessionmaker)
        self.settings: JobSettings = resources.settings
        self.queues = queues
        self.budget = budget
        self.publisher = publisher
        self.metrics = metrics

    async def known_platforms(self, kind: JobKind) -> set[str]:
        """Platforms items of `kind` may name: configured (JOB_PLATFORMS) or seen by the
        audience's queue (some producer or job queued work for it)."""
        audience = kind.audience
        return await known_platforms(
            self.settings.job_platforms.get(audience, []), self.queues[audience]
        )

    # -- submission ----------------------------------------------------------------

    async def submit(self, owner: Owner, spec: JobSpec) -> JobCreated:
        """Record the job and queue or attach its tasks, all or nothing (201)."""
        now = datetime.now(UTC)
        if spec.deadline is not None and spec.deadline <= now:
            raise invalid_field("body", "deadline", msg="must be in the future")
        slot = await self.budget.take_slot(owner)
        job_id = new_job_id()
        try:
            expected, fresh = await self._expected_tasks(spec)
        except BaseException:
            await self.budget.give_back(slot)
            raise
        try:
            with database_guard():
                async with self.sessionmaker() as session, session.begin():
                    admission = await self.budget.admit(session, owner, spec.kind, len(spec.items))
                    await repo.insert_job(
                        session, self._job_values(job_id, owner, spec, admission.cost_per_item)
                    )
                    await repo.insert_items(session, job_id, spec.items, expected)
        except BaseException:
            await self.budget.give_back(slot)
            raise
        try:
            task_ids = await self._attach(job_id, spec, fresh)
        except REDIS_DOWN as exc:
            await self._undo(job_id, spec.kind, spec.items)
            raise DependencyUnavailable("redis") from exc
        except DependencyUnavailable:
            await self._undo(job_id, spec.kind, spec.items)
            raise
        relinked = [
            (i, t) for i, (t, e) in enumerate(zip(task_ids, expected, strict=True)) if t != e
        ]
        row = await self._finish_submission(job_id, spec, relinked)
        self.metrics.created.labels(spec.kind.value).inc()
        job = job_out(row)
        return JobCreated(
            **job.model_dump(),
            estimate=Estimate(
                items=len(spec.items),
                duplicate_items=spec.duplicates,
                credits=admission.credits,
                cost_per_item=admission.cost_per_item,
            ),
        )

    def _job_values(
        self, job_id: str, owner: Owner, spec: JobSpec, cost_per_item: int
    ) -> dict[str, Any]:
        return {
            "id": job_id,
            "owner": owner.id,
            "kind": spec.kind.value,
            "audience": spec.kind.audience,
            "state": JobState.SUBMITTING.value,
            "total": len(spec.items),
            "priority": spec.priority,
            "deadline": spec.deadline,
            "label": spec.label,
            "webhook": spec.webhook,
            "cost_per_item": cost_per_item,
            "upload_sha256": spec.upload_sha256,
        }

    async def _expected_tasks(self, spec: JobSpec) -> tuple[list[str], list[str]]:
        """Per item, the task expected to carry it (the live one, else a new id) and the
        id a new task would get. Items are recorded with their expected task *before*
        anything is queued, so the results hook finds every item whose task completes
        from then on, even while the submission is still being finished."""
        queue = self.queues[spec.kind.audience]
        chunk = self.settings.job_attach_chunk
        expected: list[str] = []
        fresh: list[str] = []
        for start in range(0, len(spec.items), chunk):
            part = spec.items[start : start + chunk]
            for live in await queue.live_task_ids([(i.platform, i.key) for i in part]):
                new_id = uuid.uuid4().hex
                # A live task's id is never reused for a new one: if it completes before
                # the attach, the item gets a new task (and a fresh scrape), not its id.
                expected.append(live or new_id)
                fresh.append(new_id)
        return expected, fresh

    async def _attach(self, job_id: str, spec: JobSpec, fresh: Sequence[str]) -> list[str]:
        queue = self.queues[spec.kind.audience]
        chunk = self.settings.job_attach_chunk
        task_ids: list[str] = []
        payload = {"origin": "job", "job_id": job_id}
        for start in range(0, len(spec.items), chunk):
            tasks = [
                TaskIn(platform=i.platform, key=i.key, payload=payload, priority=spec.priority)
                for i in spec.items[start : start + chunk]
            ]
            outcome = await queue.attach(
                job_id, tasks, fresh[start : start + chunk], kind=spec.kind.value
            )
            task_ids += outcome.task_ids
            if self.resources.settings.fault_inject == "exit_mid_submit":
                # Test-only (refused unless ENVIRONMENT=test): die like `kill -9` with the
                # job recorded and part of its items attached, to prove the rollback.
                os.kill(os.getpid(), signal.SIGKILL)
        return task_ids

    async def _finish_submission(
        self, job_id: str, spec: JobSpec, relinked: Sequence[tuple[int, str]]
    ) -> Any:
        """Tx2: link the items whose task turned out other than expected (the live task
        completed, or another appeared, between the look-up and the attach), settle those
        already done, and end `submitting` with the events for what happened meanwhile."""
        first_check = datetime.now(UTC) + timedelta(seconds=self.settings.job_reconcile_first_s)
        if spec.deadline is not None:
            first_check = min(first_check, spec.deadline)
        try:
            with database_guard():
                async with self.sessionmaker() as session, session.begin():
                    # The job row first, then its items: the order every path keeps. A
                    # result committing meanwhile waits for this lock, then moves its items.
                    if await repo.lock_submitting(session, job_id) is None:
                        # Rolled back by the upkeep loop meanwhile (this request took longer
                        # than JOB_SUBMIT_TIMEOUT_S): the job is gone, say so.
                        raise DependencyUnavailable(
                            "database", "The job could not be created in time; submit again"
                        )
                    if relinked:
                        await self._relink(session, job_id, spec.kind.audience, relinked)
                    row = await repo.finish_submission(session, job_id, first_check)
                    events = await record(session, submission_events(row))
        except DependencyUnavailable:
            await self._undo(job_id, spec.kind, spec.items)
            raise
        await self.publisher.publish_quietly(events)
        if JobState(row.state).terminal:
            self.metrics.finished_job(row.kind, row.state)
        return row

    async def _relink(
        self, session: AsyncSession, job_id: str, audience: str, relinked: Sequence[tuple[int, str]]
    ) -> None:
        await repo.link_items(session, job_id, [i for i, _ in relinked], [t for _, t in relinked])
        done = await done_tasks(session, repo.DONE_TABLES[audience], [t for _, t in relinked])
        if done:
            moved = await repo.move_items(
                session, ItemState.SUCCEEDED, [repo.ItemMove(t) for t in done], job_id
            )
            self.metrics.items.labels("succeeded").inc(sum(r.moved for r in moved))

    async def _undo(self, job_id: str, kind: JobKind, items: Sequence[Item]) -> None:
        """Roll a submission back: release its waiters, delete its rows (best effort; the
        upkeep loop finishes what an outage interrupts)."""
        try:
            await self.release_items(job_id, kind.audience, items)
            with database_guard():
                async with self.sessionmaker() as session, session.begin():
                    await repo.delete_job(session, job_id)
        except DependencyUnavailable:
            log.warning("job_rollback_deferred", job_id=job_id)

    async def release_items(self, job_id: str, audience: str, items: Sequence[Any]) -> None:
        """Release the job's waiters on the live tasks of these (platform, key) items."""
        queue = self.queues[audience]
        chunk = self.settings.job_attach_chunk
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            live = await queue.live_task_ids([(i.platform, i.key) for i in part])
            tids = [t for t in live if t is not None]
            if tids:
                await self._release(queue, job_id, tids)

    async def release_tasks(self, job_id: str, audience: str, task_ids: Sequence[str]) -> None:
        """Release the job's waiters on these tasks (after its items were closed)."""
        queue = self.queues[audience]
        chunk = self.settings.job_attach_chunk
        with redis_guard():
            for start in range(0, len(task_ids), chunk):
                await self._release(queue, job_id, task_ids[start : start + chunk])

    async def _release(self, queue: WorkQueue, job_id: str, task_ids: Sequence[str]) -> None:
        """Release the job's waiters; revoke the Celery tasks that nobody wants now."""
        outcome = await queue.release(job_id, task_ids)
        if outcome.revoke and self.revoker is not None:
            await self.revoker.revoke(outcome.revoke)

    async def rollback_stuck(self, row: Any, session: AsyncSession) -> None:
        """Undo a submission that never finished (upkeep loop; `row` is locked)."""
        items = await repo.all_items(session, row.id)
        await self.release_items(row.id, row.audience, items)
        await repo.delete_job(session, row.id)

    # -- reading -------------------------------------------------------------------

    # -- ending --------------------------------------------------------------------

    async def cancel(
        self,
        owner: Owner | None,
        job_id: str,
        reason: str | None = None,
        *,
        actor: Actor | None = None,
    ) -> JobOut:
        """Cancel an open job (409 when finished); None owner: an admin's cancel."""
        return await self.close(
            owner, job_id, JobState.CANCELLED, reason, actor=actor, action=Action.JOB_CANCEL
        )

    async def close(
        self,
        owner: Owner | None,
        job_id: str,
        state: JobState,
        reason: str | None,
        *,
        actor: Actor | None = None,
        action: Action = Action.JOB_FORCE_STATE,
    ) -> JobOut:
        """End an open job as cancelled, expired or failed (409 when already finished).

        An admin's close (`owner` None) needs the `actor` its audit row names.
        """
        if owner is None and actor is None:
            raise ValueError("an admin's close of a job needs an actor for the audit trail")
        with database_guard():
            async with self.sessionmaker() as session, session.begin():
                row = await repo.lock_open_job(session, job_id, None if owner is None else owner.id)
                if row is None:
                    raise NotFound(f"No job {job_id}")
                if JobState(row.state).terminal:
                    raise Conflict(f"Job {job_id} is already {row.state}")
                before = {"state": row.state, "owner": row.owner}
                row, task_ids, events = await self.close_locked(session, row, state, reason)
                if actor is not None:
                    after = {"state": row.state, "reason": reason, "items_closed": len(task_ids)}
                    target = f"job:{job_id}"
                    await self.audit.record(session, actor, action, target, before, after)
        await self.after_close(row, task_ids, events)
        return job_out(row, admin=owner is None)

    async def close_locked(
        self, session: AsyncSession, row: Any, state: JobState, reason: str | None
    ) -> tuple[Any, list[str], list[JobEvent]]:
        """Close a locked open job in `session`'s transaction."""
        changed, task_ids = await repo.close_job(session, row.id, state, reason)
        events = await record(session, [state_event(changed, reason=reason)])
        return changed, task_ids, events

    async def after_close(self, row: Any, task_ids: Sequence[str], events: list[JobEvent]) -> None:
        """After the close committed: publish, count, release the job's waiters."""
        await self.publisher.publish_quietly(events)
        self.metrics.finished_job(row.kind, row.state)
        outcome = {"cancelled": "cancelled", "expired": "expired", "failed": "failed"}[row.state]
        self.metrics.items.labels(outcome).inc(len(task_ids))
        try:
            await self.release_tasks(row.id, row.audience, task_ids)
        except DependencyUnavailable:
            # The job is closed; its tasks stay queued and are scraped anyway (data is
            # data). Nothing is lost, some work is wasted: log it for operators.
            log.warning("job_release_failed", job_id=row.id, tasks=len(task_ids))
