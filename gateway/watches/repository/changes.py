"""SQL of changes: watched parcels of a results batch, the rows they replace, the
changes recorded (in the results transaction), a watch's changes log, and the webhook
fan-out's claim of pending changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.watches.models import ParcelChange, change_event_id

_WATCHED = sa.text(
    "SELECT i.parcel_id, w.id AS watch_id, w.owner, w.platform, w.fields"
    " FROM parcel_watch_items i JOIN parcel_watches w ON w.id = i.watch_id"
    " WHERE i.parcel_id = ANY(CAST(:ids AS text[]))"
)
# Every writer of a watched parcel takes its lock (in id order: no deadlock between two
# batches) before reading the row it replaces, so two replicas committing results for
# one parcel compare one after the other, each with the row the other left. A lock
# collision (two ids, one hash) only serialises a little more.
_LOCK_PARCELS = sa.text(
    "SELECT count(pg_advisory_xact_lock(hashtextextended('gw.parcel:' || s.id, 0)))"
    " FROM (SELECT id FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS u(id, n)"
    "   ORDER BY n) AS s"
)
_CURRENT = sa.text(
    "SELECT parcel_id, platform, owner_name, address, assessed_value, tax_amount_due,"
    " lien_status, auction_date, scraped_at FROM parcels"
    " WHERE parcel_id = ANY(CAST(:ids AS text[]))"
)
_INSERT = sa.text(
    "INSERT INTO parcel_changes (watch_id, owner, platform, parcel_id, data)"
    " VALUES (:watch_id, :owner, :platform, :parcel_id, :data)"
    " RETURNING id, created_at"
).bindparams(sa.bindparam("data", type_=JSONB))
_LOG = sa.text(
    "SELECT id, data, created_at FROM parcel_changes"
    " WHERE watch_id = :watch_id AND (CAST(:before AS bigint) IS NULL OR id < :before)"
    " ORDER BY id DESC LIMIT :n"
)
_CLAIM = sa.text(
    "SELECT id, owner, data, created_at FROM parcel_changes WHERE webhooks_pending"
    " ORDER BY created_at LIMIT :n FOR UPDATE SKIP LOCKED"
)
_CLEAR = sa.text(
    "UPDATE parcel_changes SET webhooks_pending = false WHERE id = ANY(CAST(:ids AS bigint[]))"
)


@dataclass(frozen=True, slots=True)
class WatchedParcel:
    """One watch of one parcel in a results batch."""

    parcel_id: str
    watch_id: str
    owner: str
    platform: str
    fields: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NewChange:
    """A change to record."""

    watch_id: str
    owner: str
    platform: str
    parcel_id: str
    data: dict[str, Any]  # the event data but `id` and `at` (known once inserted)


@dataclass(frozen=True, slots=True)
class RecordedChange:
    """A recorded change: its id, owner, stored data and time (clock of the insert)."""

    id: int
    owner: str
    data: dict[str, Any]
    created_at: datetime

    def event(self) -> dict[str, Any]:
        """The `parcel.changed` event data: the stored data with the change's id and
        time, as `models.ParcelChange` serialises it, so the changes log, webhooks and
        sockets carry the very same JSON document."""
        change = ParcelChange.model_validate(
            {**self.data, "id": change_event_id(self.id), "at": self.created_at}
        )
        return change.model_dump(mode="json")


async def watched(session: AsyncSession, parcel_ids: Sequence[str]) -> list[WatchedParcel]:
    """The watches of these parcels (one index probe per id: cheap when nobody watches)."""
    rows = (await session.execute(_WATCHED, {"ids": list(parcel_ids)})).all()
    return [
        WatchedParcel(r.parcel_id, r.watch_id, r.owner, r.platform, tuple(r.fields)) for r in rows
    ]


async def lock_parcels(session: AsyncSession, parcel_ids: Sequence[str]) -> None:
    """Take the watched parcels' locks until the transaction ends (sorted: no deadlock)."""
    await session.execute(_LOCK_PARCELS, {"ids": sorted(set(parcel_ids))})


async def current_rows(
    session: AsyncSession, parcel_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The current rows of these parcels (read after `lock_parcels`: a fresh snapshot)."""
    rows = (await session.execute(_CURRENT, {"ids": list(parcel_ids)})).mappings().all()
    return {r["parcel_id"]: dict(r) for r in rows}


async def insert_changes(
    session: AsyncSession, changes: Sequence[NewChange]
) -> list[RecordedChange]:
    """Record changes (pending for the webhook fan-out), one statement each (changes
    are rare next to results: a re-scrape of an unchanged parcel records none)."""
    out = []
    for c in changes:
        params = {
            "watch_id": c.watch_id,
            "owner": c.owner,
            "platform": c.platform,
            "parcel_id": c.parcel_id,
            "data": c.data,
        }
        row = (await session.execute(_INSERT, params)).one()
        out.append(RecordedChange(int(row.id), c.owner, c.data, row.created_at))
    return out


async def log(
    session: AsyncSession, watch_id: str, limit: int, before: int | None
) -> list[RecordedChange]:
    """A watch's changes, newest first, older than `before` (an id)."""
    rows = (await session.execute(_LOG, {"watch_id": watch_id, "n": limit, "before": before})).all()
    return [RecordedChange(int(r.id), "", r.data, r.created_at) for r in rows]


async def claim_pending(session: AsyncSession, limit: int) -> list[RecordedChange]:
    """Lock up to `limit` changes not fanned out yet, oldest first (others' skipped)."""
    rows = (await session.execute(_CLAIM, {"n": limit})).all()
    return [RecordedChange(int(r.id), r.owner, r.data, r.created_at) for r in rows]


async def clear_pending(session: AsyncSession, ids: Sequence[int]) -> None:
    """Mark changes fanned out."""
    if ids:
        await session.execute(_CLEAR, {"ids": list(ids)})
