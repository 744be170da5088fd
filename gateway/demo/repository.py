"""SQL the demo needs beyond the results path: which sample scrapes are stored already."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.work.repository.parcel_results import parcel_history
from gateway.work.repository.party_results import party_history


async def stored_scrapes(
    session: AsyncSession, audience: str, ids: Collection[str]
) -> set[tuple[str, datetime]]:
    """(id, scraped_at) of every history entry of these parcels (or parties)."""
    table, column = (
        (parcel_history, parcel_history.c.parcel_id)
        if audience == "parcel"
        else (party_history, party_history.c.party_id)
    )
    rows = await session.execute(sa.select(column, table.c.scraped_at).where(column.in_(list(ids))))
    return {(str(i), at) for i, at in rows.all()}
