"""What the results path tells whoever waits for tasks (the jobs capability), and when.

The worker plane knows nothing of jobs (`gateway.work` never imports `gateway.jobs`): a
task only records *that* someone waits (`waiters`, see `queue.py`). Whoever attaches
waiters implements `TaskHooks`, and the plane calls it at two moments:

* `on_commit`, inside the results transaction, after the results are saved, with the
  tasks whose result that transaction newly wrote and that had waiters at check time. The
  hook writes in the same `session`, so a task's result and the progress of the jobs
  waiting for it commit together or not at all: a hook that raises aborts the whole
  transaction and the worker retries the batch (503), exactly as if PostgreSQL had failed.
  It may return an `AfterCommit`, awaited once the transaction committed and the leases
  were released (publishing events, say); that one cannot undo anything, so its failure
  is logged and counted, never an error of the request.
* `on_dead`, after a task some job waits for was dead-lettered (by a worker's
  non-retryable or last failure, or by the reaper when its last lease expired). Redis has
  already moved the task; the call is best-effort (logged and counted on failure), so
  whoever needs certainty reconciles from the dead letters.

A batch no job waits for costs nothing extra: neither hook is called with an empty list.

`ParcelWatch` is the second hook, of parcel results only (the watches capability): it
wraps the upsert of the parcels' current rows inside the results transaction, so it can
read the rows being replaced and write what changed in the same commit as the new rows
(`around_upsert` runs `upsert` exactly once). It follows the same rules as `on_commit`:
raising aborts the batch (503, retried), the returned `AfterCommit` is best-effort.

`on_commit` must be idempotent per (task, waiter): a job that attached after the lease
check is told in a catch-up transaction after the release (see `results.py`), and a
task whose result committed before a replica died may be reported again when its
reclaimed lease is released. Moving only still-pending items makes a repeat harmless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class DoneTask:
    """A task whose succeeded result was just written."""

    task_id: str
    platform: str


@dataclass(frozen=True)
class DeadTask:
    """A task moved to the dead letters, with its last error and attempts used."""

    task_id: str
    platform: str
    error: str
    attempts: int


AfterCommit = Callable[[], Awaitable[None]]
Upsert = Callable[[], Awaitable[None]]
# `ParcelWatch.around_upsert` bound to a session: what the parcel repository is handed.
AroundUpsert = Callable[[Mapping[str, Mapping[str, Any]], Upsert], Awaitable[AfterCommit | None]]


class TaskHooks(Protocol):
    """Called by the results path and the reaper for tasks that have waiters."""

    async def on_commit(
        self, session: AsyncSession, audience: str, done: Sequence[DoneTask]
    ) -> AfterCommit | None:
        """Record `done` in `session`'s open transaction; optionally return post-commit work."""
        ...

    async def on_dead(self, audience: str, dead: Sequence[DeadTask]) -> None:
        """Record that `dead` tasks were dead-lettered (after the fact, best-effort)."""
        ...


class ParcelWatch(Protocol):
    """Called by the parcel results path around the upsert of the current rows."""

    async def around_upsert(
        self,
        session: AsyncSession,
        latest: Mapping[str, Mapping[str, Any]],
        upsert: Upsert,
    ) -> AfterCommit | None:
        """Run `upsert` (which writes `latest`, the newest new row per parcel id) once in
        `session`'s transaction; optionally return post-commit work."""
        ...
