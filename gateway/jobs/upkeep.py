"""The jobs upkeep loop: what keeps jobs truthful when a process dies or a race is lost.

Every replica runs it every JOB_UPKEEP_INTERVAL_S; each step claims its rows with
`FOR UPDATE SKIP LOCKED`, so any number of replicas share the work with one claimant per
job and no leader. Four steps, each bounded per pass:

- **roll back** submissions stuck in `submitting` longer than JOB_SUBMIT_TIMEOUT_S (the
  gateway died between recording a job and queueing its tasks): waiters released, rows
  deleted (`JobService.rollback_stuck`);
- **relay** events whose publish was lost (`publish_check_at` due): compare the job's
  last sequence with its stream's and publish what is missing;
- **expire** open jobs past their `deadline`: pending items become `expired`;
- **reconcile** open jobs whose `check_at` is due: pending items whose task is done in
  PostgreSQL succeed, whose task is dead-lettered fail with its last error, and whose task
  is gone from Redis (never done: Redis lost it) are attached again. This is what makes the
  inline accounting airtight: an item attached to a task in the instant its result was
  committing (the commit's hook ran before the item was linked) is found here, first
  JOB_RECONCILE_FIRST_S after submission, then every JOB_RECONCILE_INTERVAL_S, a page of
  RECONCILE_PAGE items per job per pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.jobs.events import EventPublisher
from gateway.jobs.metrics import JobMetrics
from gateway.jobs.models import ItemState, JobEvent, JobState
from gateway.jobs.repository import jobs as repo
from gateway.jobs.service import JobService
from gateway.jobs.tracker import JobTracker
from gateway.work.hooks import AfterCommit
from gateway.work.models import TaskIn
from gateway.work.repository.result_history import done_tasks

log = structlog.get_logger("gateway.jobs.upkeep")

CLAIM_BATCH = 20
RELAY_BATCH = 100
RECONCILE_PAGE = 2000


class JobUpkeep:
    """One pass of every upkeep step (`step`), run by the jobs plane's loop."""

    def __init__(
        self,
        service: JobService,
        tracker: JobTracker,
        publisher: EventPublisher,
        metrics: JobMetrics,
    ) -> None:
        self.service = service
        self.tracker = tracker
        self.publisher = publisher
        self.metrics = metrics
        self.sessionmaker = service.sessionmaker
        self.settings = service.settings

    async def step(self) -> None:
        """Run each step once; one failing does not stop the others."""
        for name, run in (
            ("rollback", self.roll_back_stuck),
            ("relay", self.relay),
            ("reconcile", self.reconcile_due),
        ):
            try:
                await run()
            except Exception as exc:  # logged, retried next pass
                log.warning("job_upkeep_step_failed", step=name, error=type(exc).__name__)

    async def roll_back_stuck(self) -> int:
        """Undo submissions whose gateway died mid-way; how many."""
        async with self.sessionmaker() as session, session.begin():
            rows = await repo.claim_stuck(session, self.settings.job_submit_timeout_s, CLAIM_BATCH)
            for row in rows:
                await self.service.rollback_stuck(row, session)
                log.warning("job_submission_rolled_back", job_id=row.id)
        self.metrics.upkeep.labels("rolled_back").inc(len(rows))
        return len(rows)

    async def relay(self) -> int:
        """Publish events whose publish after commit was lost; how many."""
        sent = 0
        async with self.sessionmaker() as session, session.begin():
            rows = await repo.claim_due(session, "publish_check_at", RELAY_BATCH)
            if not rows:
                return 0
            published = await self.publisher.last_seq([r.id for r in rows])
            for row in rows:
                if row.event_seq > published[row.id]:
                    stored = await repo.events_after(session, row.id, published[row.id])
                    events = [JobEvent.model_validate(e.data) for e in stored]
                    sent += await self.publisher.publish(events)
                await repo.set_columns(session, row.id, publish_check_at=None)
        self.metrics.upkeep.labels("republished").inc(sent)
        return sent

    async def reconcile_due(self) -> int:
        """Expire or reconcile open jobs whose check is due, one job per transaction (a
        job's lock holds its results back, so it is held briefly); how many jobs."""
        handled = 0
        for _ in range(CLAIM_BATCH):
            after: list[AfterCommit] = []
            closed: tuple[Any, list[str], list[JobEvent]] | None = None
            async with self.sessionmaker() as session, session.begin():
                rows = await repo.claim_due(
                    session, "check_at", 1, "AND state IN ('queued', 'running')"
                )
                if not rows:
                    break
                row, now = rows[0], datetime.now(UTC)
                if row.deadline is not None and row.deadline <= now:
                    closed = await self.service.close_locked(
                        session, row, JobState.EXPIRED, "deadline passed"
                    )
                else:
                    after = await self._reconcile(session, row, now)
            handled += 1
            for publish in after:
                await publish()
            if closed is not None:
                await self.service.after_close(*closed)
                self.metrics.upkeep.labels("expired").inc()
        return handled

    async def _reconcile(self, session: AsyncSession, row: Any, now: datetime) -> list[AfterCommit]:
        page = await repo.pending_linked(session, row.id, row.reconcile_from, RECONCILE_PAGE)
        out: list[AfterCommit] = []
        if page:
            out = await self._settle_page(session, row, page)
        if len(page) == RECONCILE_PAGE:
            # More to look at: continue with the next page on the next pass.
            await repo.set_columns(session, row.id, reconcile_from=page[-1].idx, check_at=now)
            return out
        next_check = now + timedelta(seconds=self.settings.job_reconcile_interval_s)
        if row.deadline is not None:
            next_check = min(next_check, row.deadline)
        await repo.set_columns(session, row.id, reconcile_from=-1, check_at=next_check)
        return out

    async def _settle_page(
        self, session: AsyncSession, row: Any, page: list[Any]
    ) -> list[AfterCommit]:
        out: list[AfterCommit] = []
        by_task = {p.task_id: p for p in page}
        done = await done_tasks(session, repo.DONE_TABLES[row.audience], by_task)
        moves = [repo.ItemMove(t) for t in done]
        publish = await self.tracker.apply(session, ItemState.SUCCEEDED, moves, row.id)
        if publish is not None:
            out.append(publish)
        rest = [t for t in by_task if t not in done]
        if not rest:
            self.metrics.upkeep.labels("reconciled").inc(len(done))
            return out
        summaries = await self.service.queues[row.audience].task_summaries(rest)
        dead: list[repo.ItemMove] = []
        lost: list[Any] = []
        for tid, summary in zip(rest, summaries, strict=True):
            if summary is None:
                lost.append(by_task[tid])
            elif summary.state == "dead":
                error = summary.last_error or "dead-lettered"
                dead.append(repo.ItemMove(tid, error, summary.attempt))
        publish = await self.tracker.apply(session, ItemState.FAILED, dead, row.id)
        if publish is not None:
            out.append(publish)
        if lost:
            await self._reattach(session, row, lost)
        self.metrics.upkeep.labels("reconciled").inc(len(done) + len(dead))
        return out

    async def _reattach(self, session: AsyncSession, row: Any, lost: list[Any]) -> None:
        # A task that is neither done nor in Redis was lost by Redis (a restart without
        # persistence, a flush): queue it again rather than leave the item pending forever.
        # Checked against PostgreSQL once more first: its commit may have landed meanwhile.
        done = await done_tasks(session, repo.DONE_TABLES[row.audience], [p.task_id for p in lost])
        lost = [p for p in lost if p.task_id not in done]
        if not lost:
            return
        payload = {"origin": "job", "job_id": row.id}
        tasks = [
            TaskIn(platform=p.platform, key=p.key, payload=payload, priority=row.priority)
            for p in lost
        ]
        outcome = await self.service.queues[row.audience].attach(row.id, tasks, kind=row.kind)
        await repo.link_items(session, row.id, [p.idx for p in lost], outcome.task_ids)
        self.metrics.upkeep.labels("reattached").inc(len(lost))
        log.warning("job_items_reattached", job_id=row.id, items=len(lost))
