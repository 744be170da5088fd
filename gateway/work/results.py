"""Results: validate, commit to PostgreSQL, then release the lease.

Order is the whole point (the "exactly once" argument):

1. every item is validated on its own (a bad item is `rejected`/`invalid` with field
   errors and never reaches the database; the rest of the batch proceeds);
2. succeeded items are checked against their current lease in Redis, which also extends
   those leases, so the reaper cannot hand the task to someone else mid-commit;
3. their records are committed to PostgreSQL in one transaction that first marks each
   task done (`<audience>_tasks_done`, one row per task, `ON CONFLICT DO NOTHING`); only
   the items whose task that insert newly marked are written, and only they count in
   `gateway_results_committed_total`. If PostgreSQL is down the request fails with 503
   here, before any lease is released: the worker keeps its leases (it may heartbeat
   them) and retries the same batch later;
4. only then are the leases released (`complete.lua`), including those of items whose
   task was already done; failed items go to `fail.lua` (retry with backoff, or dead
   letter).

Completion is idempotent per task, not per lease, because Redis and PostgreSQL cannot
commit together: a replica that dies between steps 3 and 4 leaves the leases to expire,
the reaper requeues the tasks, and the worker's retry lands on another replica. Whatever
arrives later for a done task, from the same lease or any other, answers `duplicate` and
writes nothing (the done row decides, inside the transaction, so two replicas committing
the same task at once cannot both write).

A reclaimed task whose result is already committed is also *dropped* rather than redone:
only a task with `attempt > 1` can be done already (attempt 1 has had no lease before
this one), so after each lease the plane asks `drop_done` about just those, one
primary-key lookup per batch that holds any; the done ones are released at once and the
worker never sees them. That lookup is an optimisation, not the guarantee: if PostgreSQL
is down at lease time the tasks are handed out, and a dead letter requeued by an operator
starts again at attempt 1 and is not looked up; such a redo is answered `duplicate` and
writes nothing twice.

A lease that is no longer current answers `duplicate` when its task is done, else
`stale_lease`, and writes nothing; one that is current but was leased by another holder
(token id, worker id) answers `not_lease_holder` (steps 2 and 4, for succeeded and
failed items) and changes nothing.

Tasks some job waits for (`waiters`, reported by the check in step 2) are handed to the
hooks (`hooks.py`): `on_commit` inside the step-3 transaction, for the tasks it newly
marked done (a redo or a second post of a done task is not newly marked, so a job hears
of each task once); its `AfterCommit` after step 4; `on_dead` after `fail.lua`
dead-lettered such tasks. A task cancelled while leased still has its result committed
(data is data): it just has no waiters left to tell. A job that attached after the check
(or to a reclaimed task whose result had committed already) is seen by the release,
which reports the waiters it removed: a task whose count differs from the check's goes
to `on_commit` again in a transaction of their own (`hook_calls.py`). Parcel results
also pass through the `ParcelWatch` hook, which wraps the current-row upsert in step 3
(parcel watches: what changed commits with the new row) and is told after step 4. (One job released
and another attached inside one commit leaves the count equal and is not caught here;
the `<audience>_tasks_done` row is the record to reconcile from.)
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.kit.outage import database_guard, is_database_down
from gateway.work.holder import LeaseHolder
from gateway.work.hook_calls import HookCalls
from gateway.work.hooks import AfterCommit, DeadTask, DoneTask, ParcelWatch, TaskHooks, Upsert
from gateway.work.metrics import WorkerMetrics
from gateway.work.models import LeasedTask, ResultItem, ResultOutcome
from gateway.work.queue import FailureIn, WorkQueue
from gateway.work.records import ParcelResult, PartyResult, json_size
from gateway.work.repository.parcel_results import parcel_tasks_done, save_parcels
from gateway.work.repository.party_results import party_tasks_done, save_parties
from gateway.work.repository.result_history import done_tasks

log = structlog.get_logger("gateway.work.results")

_ITEM = TypeAdapter(ResultItem)


def _errors(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *(str(p) for p in e["loc"])], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_input=False, include_url=False)
    ]


@dataclass
class _Pending:
    index: int
    item: ResultItem
    record: BaseModel | None = None


class ResultService:
    """Accepts result batches for one audience (`parcel` or `party`)."""

    def __init__(
        self,
        audience: str,
        queue: WorkQueue,
        sessionmaker: async_sessionmaker[AsyncSession],
        metrics: WorkerMetrics,
        hooks: TaskHooks | None = None,
        watch: ParcelWatch | None = None,
    ) -> None:
        self.audience = audience
        # Parcel results only: the watches capability sees each current row it replaces.
        self.watch = watch if audience == "parcel" else None
        self.queue = queue
        self.sessionmaker = sessionmaker
        self.metrics = metrics
        self.hook_calls = HookCalls(audience, sessionmaker, metrics, hooks)
        self.record_type: type[ParcelResult] | type[PartyResult] = (
            ParcelResult if audience == "parcel" else PartyResult
        )
        self.done_table = parcel_tasks_done if audience == "parcel" else party_tasks_done

    def _validate(
        self, raw: Any
    ) -> tuple[ResultItem | None, list[dict[str, Any]], BaseModel | None]:
        try:
            item = _ITEM.validate_python(raw)
        except ValidationError as exc:
            return None, _errors(exc), None
        if item.status == "failed":
            if item.error is None:
                return (
                    item,
                    [
                        {
                            "loc": ["error"],
                            "msg": "required when status is failed",
                            "type": "missing",
                        }
                    ],
                    None,
                )
            return item, [], None
        try:
            record = self.record_type.model_validate(item.data)
        except ValidationError as exc:
            return item, _errors(exc, ("data",)), None
        limit = self.queue.settings.result_extra_max_bytes
        if (size := json_size(record.extra)) > limit:
            return (
                item,
                [
                    {
                        "loc": ["data", "extra"],
                        "msg": f"is {size} bytes serialised; the limit is {limit}",
                        "type": "too_long",
                    }
                ],
                None,
            )
        return item, [], record

    async def submit(self, holder: LeaseHolder, raw_items: Sequence[Any]) -> list[ResultOutcome]:
        """Process one batch; raises `DependencyUnavailable` before releasing anything."""
        out: list[ResultOutcome | None] = [None] * len(raw_items)
        succeeded: list[_Pending] = []
        failed: list[_Pending] = []
        seen: set[tuple[str, str]] = set()
        for i, raw in enumerate(raw_items):
            item, errors, record = self._validate(raw)
            if item is None or errors:
                out[i] = ResultOutcome(
                    task_id=_str_or_none(raw, "task_id"),
                    lease_id=_str_or_none(raw, "lease_id"),
                    outcome="rejected",
                    reason="invalid",
                    errors=errors,
                )
                continue
            pair = (item.task_id, item.lease_id)
            if pair in seen:
                out[i] = ResultOutcome(task_id=pair[0], lease_id=pair[1], outcome="duplicate")
                continue
            seen.add(pair)
            (succeeded if item.status == "succeeded" else failed).append(_Pending(i, item, record))

        await self._commit_succeeded(holder, succeeded, out)
        await self._record_failures(holder, failed, out)
        return [o for o in out if o is not None]

    async def _commit_succeeded(
        self, holder: LeaseHolder, pending: list[_Pending], out: list[ResultOutcome | None]
    ) -> None:
        if not pending:
            return
        pairs = [(p.item.task_id, p.item.lease_id) for p in pending]
        checks = await self.queue.check(pairs, holder)
        current = []
        gone = []
        waited: dict[str, int] = {}
        for p, c in zip(pending, checks, strict=True):
            if c.status == "current":
                current.append((p, c.platform))
                if c.waiters > 0:
                    waited[p.item.task_id] = c.waiters
            elif c.status == "not_holder":
                out[p.index] = self._settled_outcome(p.item, c.status, c.platform)
            else:
                gone.append(p)
        if gone:
            # A lease Redis no longer knows either belongs to a task that is done (by this
            # lease or another: `duplicate`) or was lost before completing (`stale_lease`).
            done = await self._done(p.item.task_id for p in gone)
            for p in gone:
                status = "duplicate" if p.item.task_id in done else "stale"
                out[p.index] = self._settled_outcome(p.item, status, "")
        if not current:
            return
        with database_guard():
            async with self.sessionmaker() as session, session.begin():
                written, watched = await self._save(session, [p for p, _ in current])
                newly = [
                    DoneTask(p.item.task_id, platform)
                    for p, platform in current
                    if p.item.task_id in waited and (p.item.task_id, p.item.lease_id) in written
                ]
                after = await self.hook_calls.in_transaction(session, newly)
        self._fault_after_commit()
        # Counted at commit, before the release: a release that fails (Redis down) makes
        # the worker retry, and that retry is a `duplicate`, so this is the one count.
        for p, platform in current:
            if (p.item.task_id, p.item.lease_id) in written:
                self.metrics.completed.labels(platform, "succeeded").inc()
                self.metrics.results_committed.labels(platform).inc()
                out[p.index] = ResultOutcome(
                    task_id=p.item.task_id, lease_id=p.item.lease_id, outcome="accepted"
                )
            else:
                out[p.index] = self._settled_outcome(p.item, "duplicate", platform)
        # Release every current lease, also of tasks found already done: the task is
        # finished either way. Whatever the release says (`stale` if the lease was lost
        # during a commit longer than a lease timeout), the outcome above stands.
        released = await self.queue.complete(
            [(p.item.task_id, p.item.lease_id) for p, _ in current]
        )
        for work in (after, watched):
            if work is not None:
                await self.hook_calls.after_commit(work)
        # Waiters that changed between the check and the release (a job attached
        # meanwhile) are told now; a task reported in the transaction with the same
        # count is not reported twice.
        told = {d.task_id: waited[d.task_id] for d in newly}
        await self.hook_calls.catch_up(
            [
                DoneTask(p.item.task_id, r.platform)
                for (p, _), r in zip(current, released, strict=True)
                if r.status == "ok" and r.waiters > 0 and r.waiters != told.get(p.item.task_id)
            ]
        )

    def _fault_after_commit(self) -> None:
        if self.queue.settings.fault_inject == "exit_after_commit":
            # Test-only (refused unless ENVIRONMENT=test): die like `kill -9` in the
            # window between the commit and the release, to prove that window harmless.
            os.kill(os.getpid(), signal.SIGKILL)

    async def _done(self, task_ids: Iterable[str]) -> set[str]:
        with database_guard():
            async with self.sessionmaker() as session:
                return await done_tasks(session, self.done_table, task_ids)

    async def drop_done(self, tasks: Sequence[LeasedTask]) -> list[LeasedTask]:
        """Release just-leased tasks whose result is already committed; the rest.

        Only reclaimed or retried tasks (`attempt > 1`) can be done already, so a batch
        without any costs nothing. PostgreSQL down: hand everything out (a redo still
        writes nothing twice).
        """
        again = [t.task_id for t in tasks if t.attempt > 1]
        if not again:
            return list(tasks)
        try:
            async with self.sessionmaker() as session:
                done = await done_tasks(session, self.done_table, again)
        except Exception as exc:
            if not is_database_down(exc):
                raise
            log.warning("done_lookup_skipped_database_down", audience=self.audience)
            return list(tasks)
        if not done:
            return list(tasks)
        dropped = [t for t in tasks if t.task_id in done]
        released = await self.queue.complete([(t.task_id, t.lease_id) for t in dropped])
        for t in dropped:
            self.metrics.completed.labels(t.platform, "duplicate").inc()
        # Jobs that attached to the task after its result committed hear of it now.
        await self.hook_calls.catch_up(
            [
                DoneTask(t.task_id, r.platform)
                for t, r in zip(dropped, released, strict=True)
                if r.status == "ok" and r.waiters > 0
            ]
        )
        return [t for t in tasks if t.task_id not in done]

    async def _save(
        self, session: AsyncSession, pending: list[_Pending]
    ) -> tuple[set[tuple[str, str]], AfterCommit | None]:
        rows = []
        for p in pending:
            assert p.record is not None
            row = p.record.model_dump()
            row.update(task_id=p.item.task_id, lease_id=p.item.lease_id)
            if isinstance(p.record, PartyResult):
                row["addresses"] = [a.model_dump(mode="json") for a in p.record.addresses]
                row["documents"] = [
                    {
                        "document_id": d.document_id,
                        "doc_type": d.type,
                        "recorded_date": d.recorded_date,
                        "url": d.url,
                    }
                    for d in p.record.documents
                ]
                row["data"] = p.record.model_dump(mode="json")
            rows.append(row)
        if self.record_type is ParcelResult:
            watch = self.watch
            if watch is None:
                return await save_parcels(session, rows)

            async def around(
                latest: Mapping[str, Mapping[str, Any]], upsert: Upsert
            ) -> AfterCommit | None:
                assert watch is not None
                return await self.hook_calls.around_upsert(watch, session, latest, upsert)

            return await save_parcels(session, rows, around)
        return await save_parties(session, rows), None

    async def _record_failures(
        self, holder: LeaseHolder, pending: list[_Pending], out: list[ResultOutcome | None]
    ) -> None:
        if not pending:
            return
        failures = []
        for p in pending:
            assert p.item.error is not None
            failures.append(
                FailureIn(
                    p.item.task_id,
                    p.item.lease_id,
                    p.item.error.message,
                    p.item.error.retryable,
                )
            )
        settled = await self.queue.fail(failures, holder)
        dead = []
        for p, s in zip(pending, settled, strict=True):
            if s.status == "retry":
                self.metrics.completed.labels(s.platform, "failed_retry").inc()
                self.metrics.retries.labels(s.platform).inc()
            elif s.status == "dead":
                self.metrics.completed.labels(s.platform, "dead_lettered").inc()
                self.metrics.dead_lettered.labels(s.platform).inc()
                if s.waiters > 0:
                    assert p.item.error is not None
                    dead.append(
                        DeadTask(p.item.task_id, s.platform, p.item.error.message, s.attempt)
                    )
            elif s.status == "cancelled":
                # Nobody waits any more: the task was deleted, not retried.
                self.metrics.completed.labels(s.platform, "cancelled").inc()
            if s.status in ("retry", "dead", "cancelled"):
                out[p.index] = ResultOutcome(
                    task_id=p.item.task_id, lease_id=p.item.lease_id, outcome="accepted"
                )
            else:
                out[p.index] = self._settled_outcome(p.item, s.status, s.platform)
        await self.hook_calls.dead(dead)

    def _settled_outcome(self, item: ResultItem, status: str, platform: str) -> ResultOutcome:
        # Unknown leases have no platform; label them "unknown" to keep cardinality bounded.
        label = platform or "unknown"
        if status == "duplicate":
            self.metrics.completed.labels(label, "duplicate").inc()
            return ResultOutcome(task_id=item.task_id, lease_id=item.lease_id, outcome="duplicate")
        if status == "not_holder":  # logged and counted once per request by the caller
            return ResultOutcome(
                task_id=item.task_id,
                lease_id=item.lease_id,
                outcome="rejected",
                reason="not_lease_holder",
            )
        self.metrics.completed.labels(label, "stale").inc()
        return ResultOutcome(
            task_id=item.task_id, lease_id=item.lease_id, outcome="rejected", reason="stale_lease"
        )


def _str_or_none(raw: Any, key: str) -> str | None:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else None
