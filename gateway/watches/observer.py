"""The results path's watch hook: what a committed parcel result changed, for watchers.

Inside the transaction that writes a batch's parcel rows (`gateway/work/hooks.py`,
`ParcelWatch`), before the current rows are replaced:

1. the batch's parcel ids are looked up in `parcel_watch_items` (one index probe each;
   a batch nobody watches costs this one query and nothing else);
2. the watched ones are locked (transaction advisory locks, in id order) and their
   current rows read in a statement of its own, so the read sees whatever a concurrent
   writer of the same parcel committed before us: each result is compared with the row
   it actually replaces;
3. the upsert runs; then, for each watch of the parcel (same platform), the watched
   fields that differ between the old row and the new one become one `parcel_changes`
   row (`parcel.changed`), in the same transaction. A result older than the current
   row (the upsert keeps the newer one) changes nothing; neither does an unchanged
   re-scrape.

After the commit the changes are counted and published to the live feed (`publish.py`);
the webhook fan-out reads them from `parcel_changes` (`webhooks_pending`).

A watch created while a result for its parcel is being committed may miss that one
result (the writer looked watches up before the watch existed); the next result compares
with the row that one left.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.watches.diff import changed_fields
from gateway.watches.metrics import WatchMetrics
from gateway.watches.publish import ChangePublisher
from gateway.watches.repository import changes as repo
from gateway.work.hooks import AfterCommit, Upsert


class ParcelWatcher:
    """Implements `gateway.work.hooks.ParcelWatch` for parcel watches."""

    def __init__(self, publisher: ChangePublisher, metrics: WatchMetrics) -> None:
        self.publisher = publisher
        self.metrics = metrics

    async def around_upsert(
        self,
        session: AsyncSession,
        latest: Mapping[str, Mapping[str, Any]],
        upsert: Upsert,
    ) -> AfterCommit | None:
        """Compare the watched parcels' rows before and after `upsert`; record changes."""
        watches = await repo.watched(session, list(latest))
        if not watches:
            await upsert()
            return None
        ids = sorted({w.parcel_id for w in watches})
        await repo.lock_parcels(session, ids)
        old = await repo.current_rows(session, ids)
        await upsert()
        found: list[repo.NewChange] = []
        for w in watches:
            new = latest[w.parcel_id]
            if new["platform"] != w.platform:
                continue
            before = old.get(w.parcel_id)
            if before is not None and before["scraped_at"] > new["scraped_at"]:
                continue  # older than the current row: the upsert kept that one
            delta = changed_fields(before, new, w.fields)
            if delta:
                found.append(
                    repo.NewChange(
                        watch_id=w.watch_id,
                        owner=w.owner,
                        platform=w.platform,
                        parcel_id=w.parcel_id,
                        data={
                            "watch_id": w.watch_id,
                            "platform": w.platform,
                            "parcel_id": w.parcel_id,
                            "scraped_at": new["scraped_at"].isoformat(),
                            "previous_scraped_at": (
                                None if before is None else before["scraped_at"].isoformat()
                            ),
                            "task_id": new["task_id"],
                            "changes": delta,
                        },
                    )
                )
        if not found:
            return None
        recorded = await repo.insert_changes(session, found)

        async def after() -> None:
            self.metrics.changes.inc(len(recorded))
            await self.publisher.publish(recorded)

        return after
