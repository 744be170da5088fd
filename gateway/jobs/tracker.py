"""The results path's hook: a committed or dead-lettered task moves the jobs waiting on it.

The worker ports' result service calls `on_commit` inside the transaction that commits a
batch (with the newly done tasks that had waiters, `gateway/work/hooks.py`), so an item
leaves `pending` in the same commit as its data: the job's counters, state and events can
never disagree with what is stored. The events are published after the commit.
`on_dead` runs after Redis dead-lettered tasks: its own transaction, so a crash between
the two leaves the items pending, and the upkeep loop's reconcile finds the dead task.
The reconciler moves items through `apply` too: one path for every item outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.jobs.changes import progress_events, record
from gateway.jobs.events import EventPublisher
from gateway.jobs.metrics import JobMetrics
from gateway.jobs.models import ItemState, JobEvent
from gateway.jobs.repository.jobs import ItemMove, move_items
from gateway.work.hooks import AfterCommit, DeadTask, DoneTask


class JobTracker:
    """Moves job items when their tasks finish (implements `TaskHooks`)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        publisher: EventPublisher,
        metrics: JobMetrics,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.publisher = publisher
        self.metrics = metrics

    async def apply(
        self,
        session: AsyncSession,
        state: ItemState,
        moves: Sequence[ItemMove],
        only_job: str | None = None,
    ) -> AfterCommit | None:
        """Move the items waiting on these tasks to `state` in `session`'s transaction
        (only `only_job`'s, if given); what to run once it committed (count and
        publish), None if nothing moved."""
        rows = await move_items(session, state, moves, only_job)
        if not rows:
            return None
        events: list[JobEvent] = []
        for row in rows:
            events += progress_events(row)
        await record(session, events)
        return self._after(rows, events, state)

    def _after(self, rows: list[Any], events: list[JobEvent], state: ItemState) -> AfterCommit:
        async def publish() -> None:
            for row in rows:
                self.metrics.items.labels(state.value).inc(row.moved)
                self.metrics.finished_job(row.kind, row.state)
            await self.publisher.publish_quietly(events)

        return publish

    async def on_commit(
        self, session: AsyncSession, audience: str, done: Sequence[DoneTask]
    ) -> AfterCommit | None:
        """Succeeded tasks: their items succeed (inside the results transaction)."""
        return await self.apply(session, ItemState.SUCCEEDED, [ItemMove(t.task_id) for t in done])

    async def on_dead(self, audience: str, dead: Sequence[DeadTask]) -> None:
        """Dead-lettered tasks: their items fail with the last error (own transaction)."""
        moves = [ItemMove(t.task_id, t.error, t.attempts) for t in dead]
        async with self.sessionmaker() as session, session.begin():
            publish = await self.apply(session, ItemState.FAILED, moves)
        if publish is not None:
            await publish()
