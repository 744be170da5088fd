"""How the worker plane calls its `TaskHooks` (`hooks.py`): which failures refuse a
batch and which are only logged.

Inside the results transaction a hook's exception must abort the commit, and the worker
must retry rather than drop its results: an outage stays the usual database 503, and
anything else becomes a 503 too (the batch is fine; the hook is not), logged by type
only (driver messages can carry connection URLs). After the commit nothing can be
undone, so the `AfterCommit`, the catch-up transaction and `on_dead` are best-effort:
logged and counted in `gateway_task_hook_failures_total{stage}`, never raised into the
request or the reaper loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.core.errors import DependencyUnavailable
from gateway.kit.outage import database_guard, is_database_down
from gateway.work.hooks import AfterCommit, DeadTask, DoneTask, ParcelWatch, TaskHooks, Upsert
from gateway.work.metrics import WorkerMetrics

log = structlog.get_logger("gateway.work.hooks")


class HookCalls:
    """The hooks of one audience (none: every call is free)."""

    def __init__(
        self,
        audience: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        metrics: WorkerMetrics,
        hooks: TaskHooks | None = None,
    ) -> None:
        self.audience = audience
        self.sessionmaker = sessionmaker
        self.metrics = metrics
        self.hooks = hooks

    async def in_transaction(
        self, session: AsyncSession, done: Sequence[DoneTask]
    ) -> AfterCommit | None:
        """`on_commit` in the caller's open transaction; raising aborts it (503, retried)."""
        if self.hooks is None or not done:
            return None
        try:
            return await self.hooks.on_commit(session, self.audience, done)
        except Exception as exc:
            self._refuse("on_commit", exc, len(done))

    async def around_upsert(
        self,
        watch: ParcelWatch,
        session: AsyncSession,
        latest: Mapping[str, Mapping[str, Any]],
        upsert: Upsert,
    ) -> AfterCommit | None:
        """`watch.around_upsert` in the results transaction; raising aborts it (503)."""
        try:
            return await watch.around_upsert(session, latest, upsert)
        except Exception as exc:
            self._refuse("around_upsert", exc, len(latest))

    def _refuse(self, stage: str, exc: Exception, tasks: int) -> NoReturn:
        """Fail the batch for a hook's failure inside the transaction (called in the
        `except` block): an outage stays itself (the caller's database_guard makes it
        the usual 503), anything else becomes a 503 too."""
        if isinstance(exc, DependencyUnavailable):
            raise exc
        self._failed(stage, exc, tasks)
        if is_database_down(exc):
            raise exc
        raise DependencyUnavailable("task hooks", "the task hooks failed") from exc

    async def after_commit(self, after: AfterCommit) -> None:
        """Run what `on_commit` left for after the commit; failures are logged."""
        try:
            await after()
        except Exception as exc:
            self._failed("after_commit", exc, 0)

    async def catch_up(self, done: Sequence[DoneTask]) -> None:
        """`on_commit` in a transaction of its own, for tasks done before a job attached."""
        if self.hooks is None or not done:
            return
        try:
            with database_guard():
                async with self.sessionmaker() as session, session.begin():
                    after = await self.hooks.on_commit(session, self.audience, done)
        except Exception as exc:
            self._failed("catch_up", exc, len(done))
            return
        if after is not None:
            await self.after_commit(after)

    async def dead(self, dead: Sequence[DeadTask]) -> None:
        """`on_dead` for dead-lettered tasks jobs wait for; failures are logged."""
        if self.hooks is None or not dead:
            return
        try:
            await self.hooks.on_dead(self.audience, dead)
        except Exception as exc:
            self._failed("on_dead", exc, len(dead))

    def _failed(self, stage: str, exc: Exception, tasks: int) -> None:
        log.error(
            "task_hook_failed",
            audience=self.audience,
            stage=stage,
            error=type(exc).__name__,
            tasks=tasks,
        )
        self.metrics.hook_failures.labels(stage).inc()
