"""SQL of watches: create, read, page, delete, and what an owner watches already."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

_INSERT = sa.text(
    "INSERT INTO parcel_watches (id, owner, platform, fields, parcel_count)"
    " VALUES (:id, :owner, :platform, :fields, :parcel_count)"
    " RETURNING created_at"
)
_INSERT_ITEMS = sa.text(
    "INSERT INTO parcel_watch_items (parcel_id, watch_id)"
    " SELECT unnest(CAST(:parcel_ids AS text[])), :watch_id"
)
_USAGE = sa.text(
    "SELECT count(*) AS watches, coalesce(sum(parcel_count), 0) AS parcels"
    " FROM parcel_watches WHERE owner = :owner"
)
# One lock per owner while a creation checks the caps (two concurrent creations of one
# owner cannot both pass a cap the first one fills). Transaction-scoped.
_LOCK_OWNER = sa.text("SELECT pg_advisory_xact_lock(hashtextextended('gw.watches:' || :owner, 0))")
# A watch with its parcel ids (sorted); constants only, no input reaches the text.
_SELECT = (
    "SELECT w.id, w.platform, w.fields, w.created_at,"
    " ARRAY(SELECT i.parcel_id FROM parcel_watch_items i WHERE i.watch_id = w.id ORDER BY 1)"
    " AS parcel_ids FROM parcel_watches w"
)
_GET = sa.text(_SELECT + " WHERE w.id = :id AND w.owner = :owner")
_PAGE = sa.text(
    _SELECT + " WHERE w.owner = :owner AND (CAST(:after_at AS timestamptz) IS NULL"
    "   OR (w.created_at, w.id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS text)))"
    " ORDER BY w.created_at DESC, w.id DESC LIMIT :n"
)
_DELETE = sa.text("DELETE FROM parcel_watches WHERE id = :id AND owner = :owner RETURNING id")


@dataclass(frozen=True, slots=True)
class Usage:
    """What an owner watches already."""

    watches: int
    parcels: int


async def lock_owner(session: AsyncSession, owner: str) -> None:
    """Serialise the owner's watch creations until the transaction ends."""
    await session.execute(_LOCK_OWNER, {"owner": owner})


async def usage(session: AsyncSession, owner: str) -> Usage:
    """The owner's watches and watched parcels (summed over watches)."""
    row = (await session.execute(_USAGE, {"owner": owner})).one()
    return Usage(int(row.watches), int(row.parcels))


async def insert(
    session: AsyncSession,
    *,
    watch_id: str,
    owner: str,
    platform: str,
    fields: Sequence[str],
    parcel_ids: Sequence[str],
) -> datetime:
    """Insert a watch and its parcels; its creation time."""
    created: datetime = (
        await session.execute(
            _INSERT,
            {
                "id": watch_id,
                "owner": owner,
                "platform": platform,
                "fields": list(fields),
                "parcel_count": len(parcel_ids),
            },
        )
    ).scalar_one()
    await session.execute(_INSERT_ITEMS, {"parcel_ids": list(parcel_ids), "watch_id": watch_id})
    return created


async def get(session: AsyncSession, owner: str, watch_id: str) -> Any | None:
    """The owner's watch (None if it is not theirs or does not exist)."""
    return (await session.execute(_GET, {"id": watch_id, "owner": owner})).one_or_none()


async def page(
    session: AsyncSession, owner: str, limit: int, after: tuple[datetime, str] | None
) -> list[Any]:
    """Up to `limit` of the owner's watches, newest first, after the cursor."""
    params = {
        "owner": owner,
        "n": limit,
        "after_at": None if after is None else after[0],
        "after_id": None if after is None else after[1],
    }
    return list((await session.execute(_PAGE, params)).all())


async def delete(session: AsyncSession, owner: str, watch_id: str) -> bool:
    """Delete the owner's watch (its items and changes cascade); whether it existed."""
    return (await session.execute(_DELETE, {"id": watch_id, "owner": owner})).first() is not None
