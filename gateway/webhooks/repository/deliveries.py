"""SQL of deliveries and their attempts: record, page, read, mark for redelivery.

The dispatcher (next to come) claims due rows through `ix_webhook_deliveries_due`; the
API only reads them, inserts a test delivery, and makes one due again (redeliver).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.webhooks.repository.tables import webhook_attempts as attempts
from gateway.webhooks.repository.tables import webhook_deliveries as deliveries

_NOW = sa.func.now()


async def insert_delivery(session: AsyncSession, values: dict[str, Any]) -> Any:
    """Insert a delivery; the new row."""
    stmt = sa.insert(deliveries).values(**values).returning(deliveries)
    return (await session.execute(stmt)).one()


async def insert_attempt(session: AsyncSession, values: dict[str, Any]) -> None:
    """Record one attempt of a delivery."""
    await session.execute(sa.insert(attempts).values(**values))


async def get_delivery(session: AsyncSession, endpoint_id: str, delivery_id: str) -> Any | None:
    """One delivery of the endpoint, or None."""
    stmt = sa.select(deliveries).where(
        deliveries.c.id == delivery_id, deliveries.c.endpoint_id == endpoint_id
    )
    return (await session.execute(stmt)).one_or_none()


async def list_deliveries(
    session: AsyncSession,
    endpoint_id: str,
    *,
    states: Sequence[str] | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Any]:
    """The endpoint's deliveries newest first (keyset on created_at, id), at most `limit`."""
    stmt = sa.select(deliveries).where(deliveries.c.endpoint_id == endpoint_id)
    if states:
        stmt = stmt.where(deliveries.c.state.in_(list(states)))
    if before is not None:
        stmt = stmt.where(sa.tuple_(deliveries.c.created_at, deliveries.c.id) < sa.tuple_(*before))
    stmt = stmt.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc()).limit(limit)
    return list((await session.execute(stmt)).all())


async def recent_attempts(
    session: AsyncSession, delivery_ids: Sequence[str], per_delivery: int
) -> dict[str, list[Any]]:
    """The last `per_delivery` attempts of each delivery, oldest first."""
    if not delivery_ids:
        return {}
    newest = (
        sa.select(
            attempts,
            sa.func.row_number()
            .over(partition_by=attempts.c.delivery_id, order_by=attempts.c.attempt.desc())
            .label("rank"),
        )
        .where(attempts.c.delivery_id.in_(list(delivery_ids)))
        .subquery()
    )
    stmt = (
        sa.select(*[newest.c[c.name] for c in attempts.columns])
        .where(newest.c.rank <= per_delivery)
        .order_by(newest.c.delivery_id, newest.c.attempt)
    )
    found: dict[str, list[Any]] = {d: [] for d in delivery_ids}
    for row in (await session.execute(stmt)).all():
        found[row.delivery_id].append(row)
    return found


async def make_due(session: AsyncSession, endpoint_id: str, delivery_id: str) -> Any | None:
    """Make the endpoint's delivery pending and due now (redeliver); the row, or None."""
    stmt = (
        sa.update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.endpoint_id == endpoint_id)
        .values(state="pending", next_attempt_at=_NOW, updated_at=_NOW)
        .returning(deliveries)
    )
    return (await session.execute(stmt)).one_or_none()
