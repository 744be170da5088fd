"""Results: validate, commit to PostgreSQL, then release the lease.

Order is the whole point (the "exactly once in effect" argument):

1. every item is validated on its own (a bad item is `rejected`/`invalid` with field
   errors and never reaches the database; the rest of the batch proceeds);
2. succeeded items are checked against their current lease in Redis, which also extends
   those leases, so the reaper cannot hand the task to someone else mid-commit;
3. their records are committed to PostgreSQL in one transaction; history rows are
   keyed by (task_id, lease_id), so a replay writes nothing. If PostgreSQL is down the
   request fails with 503 here, before any lease is released: the worker keeps its
   leases (it may heartbeat them) and retries the same batch later;
4. only then are the leases released (`complete.lua`); failed items go to `fail.lua`
   (retry with backoff, or dead letter).

A lease that is no longer current answers `stale_lease` in step 2 and writes nothing;
one that already completed answers `duplicate`; one that is current but was leased by
another holder (token id, worker id) answers `not_lease_holder` (steps 2 and 4, for
succeeded and failed items) and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.kit.outage import database_guard
from gateway.work.holder import LeaseHolder
from gateway.work.metrics import WorkerMetrics
from gateway.work.models import ResultItem, ResultOutcome
from gateway.work.queue import FailureIn, WorkQueue
from gateway.work.records import ParcelResult, PartyResult, json_size
from gateway.work.repository.parcel_results import parcel_history, save_parcels
from gateway.work.repository.party_results import party_history, save_parties
from gateway.work.repository.result_history import committed_leases

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
    ) -> None:
        self.audience = audience
        self.queue = queue
        self.sessionmaker = sessionmaker
        self.metrics = metrics
        self.record_type: type[ParcelResult] | type[PartyResult] = (
            ParcelResult if audience == "parcel" else PartyResult
        )

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
        for p, c in zip(pending, checks, strict=True):
            if c.status == "current":
                current.append((p, c.platform))
            elif c.status == "not_holder":
                out[p.index] = self._settled_outcome(p.item, c.status, c.platform)
            else:
                gone.append(p)
        if gone:
            # A lease Redis no longer knows either completed (its result is in history:
            # `duplicate`) or was lost before completing (`stale_lease`).
            committed = await self._committed([(p.item.task_id, p.item.lease_id) for p in gone])
            for p in gone:
                status = "duplicate" if (p.item.task_id, p.item.lease_id) in committed else "stale"
                out[p.index] = self._settled_outcome(p.item, status, "")
        if not current:
            return
        with database_guard():
            async with self.sessionmaker() as session, session.begin():
                await self._save(session, [p for p, _ in current])
        done = await self.queue.complete([(p.item.task_id, p.item.lease_id) for p, _ in current])
        for (p, platform), d in zip(current, done, strict=True):
            # The records are committed whatever the release says; `stale` here means the
            # lease was lost during the commit (longer than a lease timeout): accepted.
            if d.status == "duplicate":
                out[p.index] = self._settled_outcome(p.item, "duplicate", platform)
                continue
            self.metrics.completed.labels(platform, "succeeded").inc()
            self.metrics.results_committed.labels(platform).inc()
            out[p.index] = ResultOutcome(
                task_id=p.item.task_id, lease_id=p.item.lease_id, outcome="accepted"
            )

    async def _committed(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        history = parcel_history if self.record_type is ParcelResult else party_history
        with database_guard():
            async with self.sessionmaker() as session:
                return await committed_leases(session, history, pairs)

    async def _save(self, session: AsyncSession, pending: list[_Pending]) -> None:
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
            await save_parcels(session, rows)
        else:
            await save_parties(session, rows)

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
        for p, s in zip(pending, settled, strict=True):
            if s.status == "retry":
                self.metrics.completed.labels(s.platform, "failed_retry").inc()
                self.metrics.retries.labels(s.platform).inc()
            elif s.status == "dead":
                self.metrics.completed.labels(s.platform, "dead_lettered").inc()
                self.metrics.dead_lettered.labels(s.platform).inc()
            if s.status in ("retry", "dead"):
                out[p.index] = ResultOutcome(
                    task_id=p.item.task_id, lease_id=p.item.lease_id, outcome="accepted"
                )
            else:
                out[p.index] = self._settled_outcome(p.item, s.status, s.platform)

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
