"""SQL of the fan-out: claim pending job events, find their endpoints, add deliveries.

Everything here runs inside the caller's transaction: the events stay locked
(`FOR UPDATE SKIP LOCKED`, so two replicas fan out different events) until the
deliveries are inserted and the events' `webhooks_pending` flag is cleared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.webhooks.repository.claim import TOKENS_SQL

_CLAIM = sa.text(
    "SELECT e.job_id, e.seq, e.type, e.data, e.created_at, j.owner"
    " FROM job_events e JOIN jobs j ON j.id = e.job_id"
    " WHERE e.webhooks_pending"
    " ORDER BY e.created_at LIMIT :n"
    " FOR UPDATE OF e SKIP LOCKED"
)

_CLEAR = sa.text(
    "UPDATE job_events SET webhooks_pending = false"
    " WHERE (job_id, seq) IN (SELECT * FROM unnest(CAST(:jobs AS text[]), CAST(:seqs AS int[])))"
)

_ENDPOINTS = sa.text(
    "SELECT id, owner, events FROM webhook_endpoints"
    " WHERE enabled AND owner = ANY(CAST(:owners AS text[]))"
)

_INSERT = sa.text(
    "INSERT INTO webhook_deliveries"
    " (id, endpoint_id, event_type, event_id, payload, state, next_attempt_at)"
    " VALUES (:id, :endpoint_id, :event_type, :event_id, :payload, 'pending', now())"
    # Fanned out twice (cannot happen while the flag is cleared in the same transaction,
    # but a manual replay might): one delivery per event and endpoint.
    " ON CONFLICT (endpoint_id, event_id) DO NOTHING"
).bindparams(sa.bindparam("payload", type_=JSONB))

# The endpoint's pending progress delivery of this job (at most one: coalescing keeps it so).
_PENDING_PROGRESS = sa.text(
    "SELECT id, CAST(payload -> 'data' ->> 'seq' AS int) AS seq FROM webhook_deliveries"
    " WHERE endpoint_id = :endpoint_id AND state = 'pending' AND event_type = 'job.progress'"
    " AND split_part(event_id, ':', 1) = :job_id"
    " LIMIT 1 FOR UPDATE"
)

_REPLACE = sa.text(
    "UPDATE webhook_deliveries SET payload = :payload, event_id = :event_id, updated_at = now()"
    " WHERE id = :id"
).bindparams(sa.bindparam("payload", type_=JSONB))


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A job event whose webhooks are not made yet, and its job's owner."""

    job_id: str
    seq: int
    type: str
    data: dict[str, Any]
    created_at: datetime
    owner: str


@dataclass(frozen=True, slots=True)
class Subscriber:
    """An enabled endpoint and the events it wants."""

    id: str
    owner: str
    events: frozenset[str]


async def claim_events(session: AsyncSession, limit: int) -> list[PendingEvent]:
    """Lock up to `limit` pending events, oldest first (others' locked ones skipped)."""
    rows = (await session.execute(_CLAIM, {"n": limit})).all()
    return [PendingEvent(r.job_id, r.seq, r.type, r.data, r.created_at, r.owner) for r in rows]


async def clear_events(session: AsyncSession, events: Sequence[PendingEvent]) -> None:
    """Mark the events fanned out."""
    if events:
        await session.execute(
            _CLEAR, {"jobs": [e.job_id for e in events], "seqs": [e.seq for e in events]}
        )


async def subscribers(session: AsyncSession, owners: Sequence[str]) -> list[Subscriber]:
    """The enabled endpoints of these owners."""
    if not owners:
        return []
    rows = (await session.execute(_ENDPOINTS, {"owners": list(owners)})).all()
    return [Subscriber(r.id, r.owner, frozenset(r.events)) for r in rows]


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert pending deliveries, due now (`id, endpoint_id, event_type, event_id,
    payload` each)."""
    if rows:
        await session.execute(_INSERT, list(rows))


async def coalesce_progress(
    session: AsyncSession, row: dict[str, Any], job_id: str, seq: int
) -> bool:
    """Fold a progress delivery into the endpoint's pending one of the same job, if any
    (the newer progress wins); whether one was there (nothing to insert then)."""
    found = (
        await session.execute(
            _PENDING_PROGRESS, {"endpoint_id": row["endpoint_id"], "job_id": job_id}
        )
    ).one_or_none()
    if found is None:
        return False
    if found.seq is None or found.seq < seq:
        await session.execute(
            _REPLACE, {"id": found.id, "payload": row["payload"], "event_id": row["event_id"]}
        )
    return True


# The backlog the metrics report: deliveries of enabled endpoints still to send (a
# disabled endpoint's pending ones are never sent, so they are not a backlog), how long
# the oldest due one has waited, and how many due ones wait for their endpoint's rate
# (its bucket holds less than a token). Both states have partial indexes. Only the
# constant `TOKENS_SQL` is formatted in.
_BACKLOG_SQL = f"""
    SELECT count(*) AS pending,
           coalesce(extract(epoch FROM now() - min(d.next_attempt_at)
               FILTER (WHERE d.state = 'pending' AND d.next_attempt_at <= now())), 0)
               AS oldest_s,
           count(*) FILTER (WHERE d.state = 'pending' AND d.next_attempt_at <= now()
               AND {TOKENS_SQL.format(e="e")} < 1) AS rate_delayed
    FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
    WHERE d.state IN ('pending', 'sending') AND e.enabled
"""  # noqa: S608
_BACKLOG = sa.text(_BACKLOG_SQL)


@dataclass(frozen=True, slots=True)
class Backlog:
    """Deliveries waiting or being sent, the age of the oldest due one (seconds), and
    the due ones held by their endpoint's rate."""

    pending: int
    oldest_s: float
    rate_delayed: int


async def backlog(session: AsyncSession) -> Backlog:
    """The outbox's backlog (see `_BACKLOG`)."""
    row = (await session.execute(_BACKLOG)).one()
    return Backlog(int(row.pending), max(0.0, float(row.oldest_s)), int(row.rate_delayed))
