"""SQL of webhook endpoints: create, read, page, change, rotate, delete (owner-scoped).

Every statement that reads or changes one endpoint names its owner too, so another
principal's endpoint is simply not found. Creations of one owner are serialised by a
transaction-scoped advisory lock on the owner, so two concurrent creations cannot both
take the tier's last endpoint slot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.webhooks.repository.tables import webhook_endpoints as endpoints

_NOW = sa.func.now()


async def lock_owner(session: AsyncSession, owner: str) -> None:
    """Hold the owner's endpoint-creation lock until the transaction ends."""
    await session.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtextextended('webhooks:' || :owner, 0))"),
        {"owner": owner},
    )


async def count_owned(session: AsyncSession, owner: str) -> int:
    """How many endpoints the owner has (enabled or not)."""
    stmt = sa.select(sa.func.count()).select_from(endpoints).where(endpoints.c.owner == owner)
    return int((await session.execute(stmt)).scalar_one())


async def insert_endpoint(session: AsyncSession, values: dict[str, Any]) -> Any:
    """Insert an endpoint; the new row."""
    stmt = sa.insert(endpoints).values(**values).returning(endpoints)
    return (await session.execute(stmt)).one()


async def get_endpoint(session: AsyncSession, endpoint_id: str, owner: str | None) -> Any | None:
    """One endpoint of `owner` (any owner's when None), or None."""
    stmt = sa.select(endpoints).where(endpoints.c.id == endpoint_id)
    if owner is not None:
        stmt = stmt.where(endpoints.c.owner == owner)
    return (await session.execute(stmt)).one_or_none()


async def list_endpoints(
    session: AsyncSession, owner: str, *, before: tuple[datetime, str] | None, limit: int
) -> list[Any]:
    """The owner's endpoints newest first (keyset on created_at, id), at most `limit`."""
    stmt = sa.select(endpoints).where(endpoints.c.owner == owner)
    if before is not None:
        stmt = stmt.where(sa.tuple_(endpoints.c.created_at, endpoints.c.id) < sa.tuple_(*before))
    stmt = stmt.order_by(endpoints.c.created_at.desc(), endpoints.c.id.desc()).limit(limit)
    return list((await session.execute(stmt)).all())


async def update_endpoint(
    session: AsyncSession, endpoint_id: str, owner: str, values: dict[str, Any]
) -> Any | None:
    """Change the given columns of the owner's endpoint; the new row, or None."""
    stmt = (
        sa.update(endpoints)
        .where(endpoints.c.id == endpoint_id, endpoints.c.owner == owner)
        .values(**values, updated_at=_NOW)
        .returning(endpoints)
    )
    return (await session.execute(stmt)).one_or_none()


async def rotate_secret(
    session: AsyncSession,
    endpoint_id: str,
    owner: str,
    *,
    secret: str,
    previous_until: datetime | None,
) -> Any | None:
    """Make `secret` current; the replaced one stays as `previous_secret` until
    `previous_until` (dropped when None). The new row, or None."""
    stmt = (
        sa.update(endpoints)
        .where(endpoints.c.id == endpoint_id, endpoints.c.owner == owner)
        .values(
            # SET reads the row before the update: the replaced secret, not the new one.
            previous_secret=endpoints.c.secret if previous_until is not None else None,
            previous_secret_until=previous_until,
            secret=secret,
            updated_at=_NOW,
        )
        .returning(endpoints)
    )
    return (await session.execute(stmt)).one_or_none()


async def delete_endpoint(session: AsyncSession, endpoint_id: str, owner: str) -> bool:
    """Delete the owner's endpoint (and, cascading, its deliveries); whether it existed."""
    stmt = (
        sa.delete(endpoints)
        .where(endpoints.c.id == endpoint_id, endpoints.c.owner == owner)
        .returning(endpoints.c.id)
    )
    return (await session.execute(stmt)).one_or_none() is not None
