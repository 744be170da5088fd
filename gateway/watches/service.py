"""Parcel watches of every owner: create under the tier's caps, read, page, delete, and
each watch's changes log (the logic behind `/v1/watches`).

A watch belongs to one principal (the limit key, like a job or a webhook endpoint);
another's is a 404 everywhere. Creation takes the owner's advisory lock before counting
what it watches already, so two concurrent creations cannot both pass the cap the first
one fills. The changes log is the durable record of `parcel.changed`: what a webhook
delivered and a live socket sent, and where a socket that was away catches up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.core.errors import Forbidden, NotFound, TooManyRequests
from gateway.jobs.owner import Owner
from gateway.kit.cursor import decode_cursor, decode_time_id_cursor, encode_cursor, time_id_cursor
from gateway.kit.field_errors import invalid_field
from gateway.kit.outage import session_scope
from gateway.watches.models import (
    WATCHABLE_FIELDS,
    ParcelChange,
    ParcelChangeList,
    WatchIn,
    WatchList,
    WatchOut,
    new_watch_id,
)
from gateway.watches.repository import changes as change_repo
from gateway.watches.repository import watches as repo


class TooManyWatches(TooManyRequests):
    """The owner holds the tier's `max_watches` watches, or the new one would take the
    watched parcels past `max_watched_parcels`."""

    slug = "too-many-watches"
    title = "Too many parcel watches"


def _not_found(watch_id: str) -> NotFound:
    return NotFound(f"Watch {watch_id} not found")


def watch_out(row: object) -> WatchOut:
    """A watch row (with its `parcel_ids`) as the API shows it."""
    return WatchOut.model_validate(row, from_attributes=True)


class WatchService:
    """Watches and their changes of every owner, each call checked against its owner."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        platforms: Callable[[], Awaitable[set[str]]],
    ) -> None:
        self.sessionmaker = sessionmaker
        # The parcel platforms a watch may name (configured or seen by the queue): a
        # typo is a 422, never a watch that waits for results no worker will post.
        self.platforms = platforms

    async def create(self, owner: Owner, body: WatchIn) -> WatchOut:
        """Watch `body.parcel_ids` of `body.platform` (429 past the tier's caps)."""
        tier = owner.tier
        if tier.max_watches == 0 or tier.max_watched_parcels == 0:
            raise Forbidden(f"Parcel watches are not part of tier {tier.name!r}")
        if body.platform not in await self.platforms():
            raise invalid_field("body", "platform", msg="unknown platform", type="unknown_platform")
        fields = body.fields if body.fields is not None else list(WATCHABLE_FIELDS)
        caps = {"max_watches": tier.max_watches, "max_watched_parcels": tier.max_watched_parcels}
        watch_id = new_watch_id()
        async with session_scope(self.sessionmaker, write=True) as session:
            await repo.lock_owner(session, owner.id)
            used = await repo.usage(session, owner.id)
            if used.watches >= tier.max_watches:
                raise TooManyWatches(
                    f"Your tier allows {tier.max_watches} watches and you have {used.watches}:"
                    " delete one, or add parcels to fewer, larger watches",
                    extra=caps,
                )
            if used.parcels + len(body.parcel_ids) > tier.max_watched_parcels:
                raise TooManyWatches(
                    f"Your tier allows {tier.max_watched_parcels} watched parcels; you watch"
                    f" {used.parcels} and this watch adds {len(body.parcel_ids)}",
                    extra=caps,
                )
            created = await repo.insert(
                session,
                watch_id=watch_id,
                owner=owner.id,
                platform=body.platform,
                fields=fields,
                parcel_ids=body.parcel_ids,
            )
        return WatchOut(
            id=watch_id,
            platform=body.platform,
            parcel_ids=sorted(body.parcel_ids),
            fields=fields,
            created_at=created,
        )

    async def get(self, owner: Owner, watch_id: str) -> WatchOut:
        """One of the owner's watches (404 otherwise)."""
        async with session_scope(self.sessionmaker) as session:
            row = await repo.get(session, owner.id, watch_id)
        if row is None:
            raise _not_found(watch_id)
        return watch_out(row)

    async def list_watches(self, owner: Owner, *, limit: int, cursor: str | None) -> WatchList:
        """A page of the owner's watches, newest first."""
        after = decode_time_id_cursor(cursor)
        async with session_scope(self.sessionmaker) as session:
            rows = await repo.page(session, owner.id, limit + 1, after)
        more = len(rows) > limit
        rows = rows[:limit]
        return WatchList(items=[watch_out(r) for r in rows], next_cursor=time_id_cursor(rows, more))

    async def delete(self, owner: Owner, watch_id: str) -> None:
        """Stop watching (its changes log goes with it; deliveries already made stay)."""
        async with session_scope(self.sessionmaker, write=True) as session:
            if not await repo.delete(session, owner.id, watch_id):
                raise _not_found(watch_id)

    async def changes(
        self, owner: Owner, watch_id: str, *, limit: int, cursor: str | None
    ) -> ParcelChangeList:
        """A page of the watch's recorded changes, newest first (404 if not the owner's)."""
        before = None if not cursor else int(decode_cursor(cursor, int))
        async with session_scope(self.sessionmaker) as session:
            if await repo.get(session, owner.id, watch_id) is None:
                raise _not_found(watch_id)
            rows = await change_repo.log(session, watch_id, limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        return ParcelChangeList(
            items=[ParcelChange.model_validate(r.event()) for r in rows],
            next_cursor=encode_cursor(rows[-1].id) if more else None,
        )
