"""SQL of the claim: take due deliveries into `sending`, within each endpoint's in-flight
cap and delivery rate, exactly one replica per delivery.

Three statements in the caller's transaction:

1. **Lock endpoints** (`FOR UPDATE SKIP LOCKED`): enabled endpoints with due deliveries,
   below their in-flight cap and with at least one token by an unlocked first look, oldest
   due first, at most as many as there are free slots. A replica holds an endpoint's row
   while it claims for it; another replica skips that endpoint this step. The locked row
   gives the bucket's level now (`TOKENS_SQL`).
2. **Plan** (a new snapshot, taken after the locks, so every claim another replica
   committed for these endpoints is seen: the in-flight cap is exact across replicas):
   each locked endpoint's due deliveries within its cap, oldest first. `plan` picks, in
   Python, up to the free slots, at most floor(tokens) per endpoint.
3. **Take** the picked deliveries into `sending` under a lease and spend one token per
   delivery from their endpoints' buckets.

Why PostgreSQL for the bucket, not Redis: the tokens are spent in the transaction that
claims, so a claim that rolls back spends none, and the endpoint row lock that already
serialises claimers makes the bucket exact across replicas; no second store to keep
consistent, and nothing when Redis is down. The cost is one small row update per endpoint
per claim.

A bucket holds up to max(1, rate) tokens, so an endpoint gets a burst of one second's
worth, then `rate_per_s`. Deliveries over it stay `pending` and due: the next claims take
them as tokens come back (a wait, never a drop). An endpoint with `rate_per_s` NULL is
not limited.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.webhooks.repository.dispatch import Claimed

# The bucket's level now (NULL: not limited): refilled at the rate since `rate_at`, at
# most its capacity; a bucket never used is full.
TOKENS_SQL = """
    CASE WHEN {e}.rate_per_s IS NULL THEN NULL ELSE least(
        greatest(1.0, {e}.rate_per_s),
        coalesce({e}.rate_tokens
                 + {e}.rate_per_s * extract(epoch FROM now() - {e}.rate_at),
                 greatest(1.0, {e}.rate_per_s)))
    END
"""

# Only the constant `TOKENS_SQL` is formatted in, never input.
_LOCK_SQL = f"""
    WITH RECURSIVE pend AS (
        -- The endpoints with pending deliveries, one index descent each (a loose index
        -- scan of ix_webhook_deliveries_endpoint_pending): the cost follows the number
        -- of such endpoints, not the size of the backlog.
        (SELECT endpoint_id FROM webhook_deliveries WHERE state = 'pending'
         ORDER BY endpoint_id LIMIT 1)
        UNION ALL
        SELECT (SELECT d.endpoint_id FROM webhook_deliveries d
                WHERE d.state = 'pending' AND d.endpoint_id > pend.endpoint_id
                ORDER BY d.endpoint_id LIMIT 1)
        FROM pend WHERE pend.endpoint_id IS NOT NULL
    ), due AS (
        SELECT pend.endpoint_id, first.next_attempt_at AS oldest
        FROM pend CROSS JOIN LATERAL (
            SELECT d.next_attempt_at FROM webhook_deliveries d
            WHERE d.endpoint_id = pend.endpoint_id AND d.state = 'pending'
            ORDER BY d.next_attempt_at LIMIT 1
        ) AS first
        WHERE first.next_attempt_at <= now()
    ), busy AS (
        SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
        WHERE state = 'sending' GROUP BY endpoint_id
    ), open AS (
        SELECT due.endpoint_id, due.oldest
        FROM due JOIN webhook_endpoints o ON o.id = due.endpoint_id
        LEFT JOIN busy ON busy.endpoint_id = due.endpoint_id
        WHERE o.enabled AND coalesce(busy.n, 0) < :per_endpoint
          AND coalesce({TOKENS_SQL.format(e="o")} >= 1, true)
        ORDER BY due.oldest LIMIT :n
    )
    SELECT e.id, {TOKENS_SQL.format(e="e")} AS tokens
    FROM webhook_endpoints e JOIN open ON open.endpoint_id = e.id
    WHERE e.enabled
    ORDER BY open.oldest
    FOR UPDATE OF e SKIP LOCKED
"""  # noqa: S608
_LOCK = sa.text(_LOCK_SQL)

# Each locked endpoint's first due deliveries, as many as its cap leaves room for: an
# ordered index scan per endpoint that stops there, whatever the backlog behind them.
_PLAN = sa.text(
    """
    WITH busy AS (
        SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
        WHERE state = 'sending' AND endpoint_id = ANY(CAST(:ids AS text[]))
        GROUP BY endpoint_id
    )
    SELECT d.id, d.endpoint_id, d.next_attempt_at
    FROM unnest(CAST(:ids AS text[])) AS e(id)
    LEFT JOIN busy b ON b.endpoint_id = e.id
    CROSS JOIN LATERAL (
        SELECT x.id, x.endpoint_id, x.next_attempt_at FROM webhook_deliveries x
        WHERE x.endpoint_id = e.id AND x.state = 'pending' AND x.next_attempt_at <= now()
        ORDER BY x.next_attempt_at, x.id
        LIMIT greatest(0, :per_endpoint - coalesce(b.n, 0))
    ) AS d
    ORDER BY d.next_attempt_at, d.id
    """
)

_TAKE = sa.text(
    """
    WITH taken AS (
        UPDATE webhook_deliveries d
        SET state = 'sending', lease_until = now() + make_interval(secs => :lease_s),
            updated_at = now()
        FROM webhook_endpoints e
        WHERE d.id = ANY(CAST(:ids AS text[])) AND d.state = 'pending'
          AND e.id = d.endpoint_id
        RETURNING d.id, d.endpoint_id, d.event_type, d.payload, d.attempts, d.lease_until,
                  e.url, e.secret, e.previous_secret, e.previous_secret_until
    ), spent AS (
        UPDATE webhook_endpoints e SET rate_tokens = t.tokens - c.n, rate_at = now()
        FROM (SELECT endpoint_id, count(*) AS n FROM taken GROUP BY endpoint_id) c
        JOIN unnest(CAST(:endpoints AS text[]), CAST(:tokens AS double precision[]))
             AS t(id, tokens) ON t.id = c.endpoint_id
        WHERE e.id = c.endpoint_id AND t.tokens IS NOT NULL
    )
    SELECT * FROM taken
    """
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A due delivery within its endpoint's in-flight cap."""

    id: str
    endpoint_id: str
    next_attempt_at: datetime


def plan(candidates: Sequence[Candidate], tokens: dict[str, float | None], limit: int) -> list[str]:
    """The deliveries to take: oldest due first, at most `limit`, at most floor(tokens)
    of each endpoint (None: no limit)."""
    left = {e: (None if t is None else math.floor(t)) for e, t in tokens.items()}
    picked: list[str] = []
    for c in candidates:
        if len(picked) >= limit:
            break
        allowed = left.get(c.endpoint_id, 0)
        if allowed is not None:
            if allowed <= 0:
                continue
            left[c.endpoint_id] = allowed - 1
        picked.append(c.id)
    return picked


async def claim(
    session: AsyncSession, *, limit: int, per_endpoint: int, lease_s: float
) -> list[Claimed]:
    """Take up to `limit` due deliveries into `sending` (see the module); commit to make
    the claim count."""
    if limit <= 0:
        return []
    found = await session.execute(_LOCK, {"n": limit, "per_endpoint": per_endpoint})
    tokens: dict[str, float | None] = {r.id: r.tokens for r in found.all()}
    if not tokens:
        return []
    rows = await session.execute(_PLAN, {"ids": list(tokens), "per_endpoint": per_endpoint})
    ids = plan([Candidate(*r) for r in rows.all()], tokens, limit)
    if not ids:
        return []
    endpoints = list(tokens)
    params = {
        "ids": ids,
        "lease_s": lease_s,
        "endpoints": endpoints,
        "tokens": [tokens[e] for e in endpoints],
    }
    taken = (await session.execute(_TAKE, params)).all()
    return [Claimed(**row._asdict()) for row in taken]
