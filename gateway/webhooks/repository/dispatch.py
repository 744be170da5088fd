"""SQL of the dispatcher: take back expired leases, record attempts' outcomes in batches
(fenced by the lease), and mark endpoints failing or disabled (the claim is `claim.py`).

A claim moves deliveries from `pending` to `sending` with `lease_until` and commits, so
each attempt is sent by exactly one replica. `lease_until` is also the claim's fencing
token: an outcome is recorded only while the delivery is still `sending` under the same
lease, so a replica whose lease ran out (and whose delivery another replica took back)
records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

_REAP = sa.text(
    "UPDATE webhook_deliveries SET state = 'pending', lease_until = NULL,"
    " next_attempt_at = now(), updated_at = now()"
    " WHERE state = 'sending' AND lease_until < now() RETURNING id"
)

# Several attempts' outcomes in one statement: each delivery moves to its new state only
# while it is still `sending` under the lease it was claimed with (the fence), and only
# the deliveries that moved get their attempt row (numbered by the new count).
_FINISH_MANY = sa.text(
    """
    WITH i AS (
        SELECT * FROM unnest(
            CAST(:ids AS text[]), CAST(:leases AS timestamptz[]), CAST(:states AS text[]),
            CAST(:next_at AS timestamptz[]), CAST(:at AS timestamptz[]),
            CAST(:status AS int[]), CAST(:error AS text[]),
            CAST(:latency_ms AS double precision[]), CAST(:excerpt AS text[])
        ) AS i(id, lease_until, state, next_attempt_at, at, status, error, latency_ms,
               excerpt)
    ), finished AS (
        UPDATE webhook_deliveries d
        SET state = i.state, attempts = d.attempts + 1, next_attempt_at = i.next_attempt_at,
            lease_until = NULL, updated_at = now()
        FROM i
        WHERE d.id = i.id AND d.state = 'sending' AND d.lease_until = i.lease_until
        RETURNING d.id, d.attempts
    ), logged AS (
        INSERT INTO webhook_attempts
            (delivery_id, attempt, at, status, error, latency_ms, excerpt, next_retry_at)
        SELECT f.id, f.attempts, i.at, i.status, i.error, i.latency_ms, i.excerpt,
               i.next_attempt_at
        FROM finished f JOIN i ON i.id = f.id
    )
    SELECT id FROM finished
    """
)

# Endpoint rows a batch will change, locked in id order: two replicas' batches touching
# the same endpoints then wait for each other instead of deadlocking.
_LOCK_ENDPOINTS = sa.text(
    "SELECT id FROM webhook_endpoints WHERE id = ANY(CAST(:ids AS text[])) ORDER BY id FOR UPDATE"
)

_HEALTHY_MANY = sa.text(
    "UPDATE webhook_endpoints SET failing_since = NULL, updated_at = now()"
    " WHERE id = ANY(CAST(:ids AS text[])) AND failing_since IS NOT NULL"
)

# A run of failures starts at the first failure (kept if one is under way); an enabled
# endpoint whose run is longer than the limit by its last failure is disabled
# ("failing"). `disabled` says which were disabled by this statement.
_FAILING_MANY = sa.text(
    """
    WITH i AS (
        SELECT * FROM unnest(
            CAST(:ids AS text[]), CAST(:firsts AS timestamptz[]), CAST(:lasts AS timestamptz[])
        ) AS i(id, first_at, last_at)
    ), old AS (
        SELECT e.id, e.enabled, coalesce(e.failing_since, i.first_at) AS since, i.last_at,
               e.enabled AND i.last_at - coalesce(e.failing_since, i.first_at)
                   > make_interval(secs => CAST(:after_s AS double precision)) AS too_long
        FROM webhook_endpoints e JOIN i ON i.id = e.id
    )
    UPDATE webhook_endpoints e
    SET failing_since = old.since,
        enabled = e.enabled AND NOT old.too_long,
        disabled_reason = CASE WHEN old.too_long THEN 'failing' ELSE e.disabled_reason END,
        disabled_at = CASE WHEN old.too_long THEN now() ELSE e.disabled_at END,
        updated_at = now()
    FROM old WHERE e.id = old.id
    RETURNING e.id, old.too_long AS disabled
    """
)

_DISABLE_MANY = sa.text(
    "UPDATE webhook_endpoints SET enabled = false, disabled_reason = :reason,"
    " disabled_at = now(), updated_at = now()"
    " WHERE id = ANY(CAST(:ids AS text[])) AND enabled RETURNING id"
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


async def reap(session: AsyncSession) -> list[str]:
    """Put deliveries whose lease ran out back to pending, due now; their ids."""
    return list((await session.execute(_REAP)).scalars().all())


@dataclass(frozen=True, slots=True)
class Outcome:
    """One attempt's outcome to record: the delivery's new state and the attempt row."""

    claimed: Claimed
    state: str
    next_attempt_at: datetime | None
    at: datetime
    status: int | None
    error: str | None
    latency_ms: float
    excerpt: str


async def finish_many(session: AsyncSession, outcomes: Sequence[Outcome]) -> set[str]:
    """Record the attempts and their deliveries' new states where the lease still holds;
    the ids of the deliveries recorded (the others were taken back: nothing written)."""
    if not outcomes:
        return set()
    params = {
        "ids": [o.claimed.id for o in outcomes],
        "leases": [o.claimed.lease_until for o in outcomes],
        "states": [o.state for o in outcomes],
        "next_at": [o.next_attempt_at for o in outcomes],
        "at": [o.at for o in outcomes],
        "status": [o.status for o in outcomes],
        "error": [o.error for o in outcomes],
        "latency_ms": [o.latency_ms for o in outcomes],
        "excerpt": [o.excerpt for o in outcomes],
    }
    return set((await session.execute(_FINISH_MANY, params)).scalars().all())


async def finish(
    session: AsyncSession,
    claimed: Claimed,
    *,
    state: str,
    next_attempt_at: datetime | None,
    attempt: dict[str, Any],
) -> bool:
    """Record one attempt (`finish_many` of one); whether the lease still held."""
    outcome = Outcome(
        claimed,
        state,
        next_attempt_at,
        attempt["at"],
        attempt["status"],
        attempt["error"],
        attempt["latency_ms"],
        attempt["excerpt"],
    )
    return bool(await finish_many(session, [outcome]))


async def lock_endpoints(session: AsyncSession, endpoint_ids: Sequence[str]) -> None:
    """Lock these endpoints' rows (in id order) until the transaction ends."""
    if endpoint_ids:
        await session.execute(_LOCK_ENDPOINTS, {"ids": sorted(set(endpoint_ids))})


async def mark_healthy_many(session: AsyncSession, endpoint_ids: Sequence[str]) -> None:
    """End these endpoints' runs of failures."""
    if endpoint_ids:
        await session.execute(_HEALTHY_MANY, {"ids": list(endpoint_ids)})


async def mark_failing_many(
    session: AsyncSession,
    runs: dict[str, tuple[datetime, datetime]],
    *,
    disable_after_s: float,
) -> list[str]:
    """Start or continue the runs of failures (endpoint id: first and last failure of
    this batch), disabling endpoints failing for longer than `disable_after_s`; the ids
    of the endpoints this disabled."""
    if not runs:
        return []
    ids = sorted(runs)
    params = {
        "ids": ids,
        "firsts": [runs[i][0] for i in ids],
        "lasts": [runs[i][1] for i in ids],
        "after_s": disable_after_s,
    }
    rows = (await session.execute(_FAILING_MANY, params)).all()
    return sorted(r.id for r in rows if r.disabled)


async def disable_many(
    session: AsyncSession, endpoint_ids: Sequence[str], reason: str
) -> list[str]:
    """Disable these endpoints for `reason`; the ids of those that were enabled."""
    if not endpoint_ids:
        return []
    found = await session.execute(_DISABLE_MANY, {"ids": list(endpoint_ids), "reason": reason})
    return sorted(found.scalars().all())
