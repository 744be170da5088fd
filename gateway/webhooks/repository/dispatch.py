"""SQL of the dispatcher: claim due deliveries under a lease, take back expired leases,
record an attempt's outcome (fenced by the lease), and mark endpoints failing or disabled.

A claim moves deliveries from `pending` to `sending` with `lease_until` and commits, so
each attempt is sent by exactly one replica. `lease_until` is also the claim's fencing
token: an outcome is recorded only while the delivery is still `sending` under the same
lease, so a replica whose lease ran out (and whose delivery another replica took back)
records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

# Due deliveries of enabled endpoints, at most `per_endpoint` in flight per endpoint
# (counting those already `sending` anywhere), oldest due first. The per-endpoint rank is
# computed without locks; the lock (SKIP LOCKED) re-checks the state, so two replicas
# never claim one delivery (they may briefly exceed the cap together).
_CLAIM = sa.text(
    """
    WITH busy AS (
        SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
        WHERE state = 'sending' GROUP BY endpoint_id
    ), ranked AS (
        SELECT d.id, d.endpoint_id,
               row_number() OVER (PARTITION BY d.endpoint_id
                                  ORDER BY d.next_attempt_at, d.id) AS rn
        FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
        WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND e.enabled
    ), picked AS (
        SELECT r.id FROM ranked r LEFT JOIN busy b ON b.endpoint_id = r.endpoint_id
        WHERE r.rn + coalesce(b.n, 0) <= :per_endpoint
    ), locked AS (
        SELECT d.id FROM webhook_deliveries d
        WHERE d.id IN (SELECT id FROM picked) AND d.state = 'pending'
        ORDER BY d.next_attempt_at LIMIT :n
        FOR UPDATE SKIP LOCKED
    )
    UPDATE webhook_deliveries d
    SET state = 'sending', lease_until = now() + make_interval(secs => :lease_s),
        updated_at = now()
    FROM locked, webhook_endpoints e
    WHERE d.id = locked.id AND e.id = d.endpoint_id
    RETURNING d.id, d.endpoint_id, d.event_type, d.payload, d.attempts, d.lease_until,
              e.url, e.secret, e.previous_secret, e.previous_secret_until
    """
)

_REAP = sa.text(
    "UPDATE webhook_deliveries SET state = 'pending', lease_until = NULL,"
    " next_attempt_at = now(), updated_at = now()"
    " WHERE state = 'sending' AND lease_until < now() RETURNING id"
)

_FINISH = sa.text(
    "UPDATE webhook_deliveries SET state = :state, attempts = attempts + 1,"
    " next_attempt_at = :next_attempt_at, lease_until = NULL, updated_at = now()"
    " WHERE id = :id AND state = 'sending' AND lease_until = :lease_until"
    " RETURNING attempts"
)

_ATTEMPT = sa.text(
    "INSERT INTO webhook_attempts"
    " (delivery_id, attempt, at, status, error, latency_ms, excerpt, next_retry_at)"
    " VALUES (:delivery_id, :attempt, :at, :status, :error, :latency_ms, :excerpt,"
    " :next_retry_at)"
)

_HEALTHY = sa.text(
    "UPDATE webhook_endpoints SET failing_since = NULL, updated_at = now()"
    " WHERE id = :id AND failing_since IS NOT NULL"
)

_FAILING = sa.text(
    "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, :at),"
    " updated_at = now() WHERE id = :id RETURNING failing_since, enabled"
)

_DISABLE = sa.text(
    "UPDATE webhook_endpoints SET enabled = false, disabled_reason = :reason,"
    " disabled_at = now(), updated_at = now() WHERE id = :id AND enabled RETURNING id"
)


# Not frozen: `service.secrets_for_signing` takes it through a protocol of plain attributes.
@dataclass(slots=True)
class Claimed:
    """A delivery this replica holds (`lease_until` is its fencing token) and what
    sending it needs of its endpoint."""

    id: str
    endpoint_id: str
    event_type: str
    payload: dict[str, Any]
    attempts: int
    lease_until: datetime
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None


async def claim(
    session: AsyncSession, *, limit: int, per_endpoint: int, lease_s: float
) -> list[Claimed]:
    """Take up to `limit` due deliveries into `sending` (commit to make the claim count)."""
    params = {"n": limit, "per_endpoint": per_endpoint, "lease_s": lease_s}
    rows = (await session.execute(_CLAIM, params)).all()
    return [Claimed(**row._asdict()) for row in rows]


async def reap(session: AsyncSession) -> list[str]:
    """Put deliveries whose lease ran out back to pending, due now; their ids."""
    return list((await session.execute(_REAP)).scalars().all())


async def finish(
    session: AsyncSession,
    claimed: Claimed,
    *,
    state: str,
    next_attempt_at: datetime | None,
    attempt: dict[str, Any],
) -> bool:
    """Record the attempt and the delivery's new state, if the lease still holds;
    whether it did (False: another replica took the delivery back, nothing written)."""
    found = (
        await session.execute(
            _FINISH,
            {
                "id": claimed.id,
                "state": state,
                "next_attempt_at": next_attempt_at,
                "lease_until": claimed.lease_until,
            },
        )
    ).one_or_none()
    if found is None:
        return False
    await session.execute(
        _ATTEMPT, {**attempt, "delivery_id": claimed.id, "attempt": found.attempts}
    )
    return True


async def mark_healthy(session: AsyncSession, endpoint_id: str) -> None:
    """End the endpoint's run of failures."""
    await session.execute(_HEALTHY, {"id": endpoint_id})


async def mark_failing(session: AsyncSession, endpoint_id: str, at: datetime) -> datetime | None:
    """Start (or continue) the endpoint's run of failures; since when it fails (None if
    the endpoint is gone or already disabled)."""
    row = (await session.execute(_FAILING, {"id": endpoint_id, "at": at})).one_or_none()
    if row is None or not row.enabled:
        return None
    failing_since: datetime = row.failing_since
    return failing_since


async def disable(session: AsyncSession, endpoint_id: str, reason: str) -> bool:
    """Disable the endpoint for `reason`; whether it was enabled."""
    found = await session.execute(_DISABLE, {"id": endpoint_id, "reason": reason})
    return found.first() is not None
