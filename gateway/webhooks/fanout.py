"""Fan-out: job events (the jobs outbox, `job_events`) and parcel changes (the watches
outbox, `parcel_changes`) become webhook deliveries.

A job event is written with `webhooks_pending = true` in the transaction that changes the
job. `FanOut.step` claims a batch of pending events (`FOR UPDATE SKIP LOCKED`: replicas
take different ones), inserts one pending delivery per subscribed enabled endpoint of the
job's owner, and clears the flag, in one transaction: an event is either still pending or
has all its deliveries, whatever crashes when. The payload is the webhook body
`{"type", "timestamp", "data": <the JobEvent JSON>}`.

Parcel changes go the same way, each in its own transaction: claimed while
`webhooks_pending`, one delivery per endpoint of the watch's owner subscribed to
`parcel.changed`, flag cleared; the body's data is the change (`ParcelChange`), its
event id `pc_<id>`.

`job.progress` is throttled by coalescing: while an endpoint still has a pending progress
delivery of the job, a newer progress replaces its payload instead of queueing another
(a receiver gets the latest counts, not every step).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.kit.outage import session_scope
from gateway.watches.models import PARCEL_CHANGED, change_event_id
from gateway.watches.repository import changes as watch_changes
from gateway.webhooks.metrics import WebhookMetrics, unexported
from gateway.webhooks.models import WebhookEventType, new_delivery_id
from gateway.webhooks.repository import outbox
from gateway.webhooks.repository.outbox import PendingEvent

# Events claimed per transaction: big enough for throughput, small enough that the
# locks and the transaction stay short.
FANOUT_BATCH = 500

PROGRESS = WebhookEventType.JOB_PROGRESS.value
# Job events that are webhook events (`job.queued` is not one).
DELIVERABLE = frozenset(t.value for t in WebhookEventType)


def webhook_body(event: PendingEvent) -> dict[str, Any]:
    """The webhook payload of a job event: type, timestamp, and the JobEvent JSON (what
    `job_events.data` holds, the same document the live streams send)."""
    return {
        "type": event.type,
        "timestamp": event.created_at.isoformat(),
        "data": event.data,
    }


class FanOut:
    """Makes the deliveries of pending job events, a batch per `step`."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        batch: int = FANOUT_BATCH,
        metrics: WebhookMetrics | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._batch = batch
        self._metrics = metrics if metrics is not None else unexported()

    async def step(self) -> int:
        """Fan out one batch of job events and one of parcel changes; how many events it
        took (0: none pending)."""
        return await self._job_events() + await self._parcel_changes()

    async def _parcel_changes(self) -> int:
        """`parcel.changed` events (`parcel_changes`) to their owners' endpoints."""
        async with session_scope(self._sessionmaker, write=True) as session:
            changes = await watch_changes.claim_pending(session, self._batch)
            if not changes:
                return 0
            owners = sorted({c.owner for c in changes})
            by_owner: dict[str, list[outbox.Subscriber]] = {}
            for sub in await outbox.subscribers(session, owners):
                if PARCEL_CHANGED in sub.events:
                    by_owner.setdefault(sub.owner, []).append(sub)
            rows = [
                {
                    "id": new_delivery_id(),
                    "endpoint_id": sub.id,
                    "event_type": PARCEL_CHANGED,
                    "event_id": change_event_id(change.id),
                    "payload": {
                        "type": PARCEL_CHANGED,
                        "timestamp": change.created_at.isoformat(),
                        "data": change.event(),
                    },
                }
                for change in changes
                for sub in by_owner.get(change.owner, ())
            ]
            await outbox.insert_deliveries(session, rows)
            await watch_changes.clear_pending(session, [c.id for c in changes])
        self._metrics.fanout.inc(len(rows))
        return len(changes)

    async def _job_events(self) -> int:
        async with session_scope(self._sessionmaker, write=True) as session:
            events = await outbox.claim_events(session, self._batch)
            if not events:
                return 0
            wanted = [e for e in events if e.type in DELIVERABLE]
            owners = sorted({e.owner for e in wanted})
            by_owner: dict[str, list[outbox.Subscriber]] = {}
            for sub in await outbox.subscribers(session, owners):
                by_owner.setdefault(sub.owner, []).append(sub)
            rows: list[dict[str, Any]] = []
            created = 0
            # Events in order, so a job's later progress replaces its earlier one.
            for event in sorted(wanted, key=lambda e: (e.job_id, e.seq)):
                subs = [s for s in by_owner.get(event.owner, ()) if event.type in s.events]
                if not subs:
                    continue
                body = webhook_body(event)
                for sub in subs:
                    row = {
                        "id": new_delivery_id(),
                        "endpoint_id": sub.id,
                        "event_type": event.type,
                        "event_id": f"{event.job_id}:{event.seq}",
                        "payload": body,
                    }
                    if event.type == PROGRESS:
                        # Inserted at once, so a later progress in this batch finds it.
                        if not await outbox.coalesce_progress(
                            session, row, event.job_id, event.seq
                        ):
                            await outbox.insert_deliveries(session, [row])
                            created += 1
                    else:
                        rows.append(row)
            await outbox.insert_deliveries(session, rows)
            await outbox.clear_events(session, events)
        # Counted once committed (a duplicate skipped by ON CONFLICT cannot happen while
        # the flag is cleared in the same transaction).
        self._metrics.fanout.inc(created + len(rows))
        return len(events)

    async def drain(self) -> int:
        """Fan out until nothing is pending (tests, and the loop after a backlog)."""
        total = 0
        while taken := await self.step():
            total += taken
        return total
