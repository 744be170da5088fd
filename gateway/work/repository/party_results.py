"""SQL for party results: `parties`, `party_documents`, `party_parcels`, `party_history`,
and the done fact `party_tasks_done`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.work.repository.result_history import newest_written, record_done, tasks_done_table

metadata = sa.MetaData()

parties = sa.Table(
    "parties",
    metadata,
    sa.Column("party_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("kind", sa.Text),
    sa.Column("platform", sa.Text),
    sa.Column("addresses", JSONB),
    sa.Column("source_url", sa.Text),
    sa.Column("scraped_at", sa.DateTime(timezone=True)),
    sa.Column("extra", JSONB),
    sa.Column("task_id", sa.Text),
    sa.Column("lease_id", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

party_documents = sa.Table(
    "party_documents",
    metadata,
    sa.Column("party_id", sa.Text, primary_key=True),
    sa.Column("document_id", sa.Text, primary_key=True),
    sa.Column("doc_type", sa.Text),
    sa.Column("recorded_date", sa.Date),
    sa.Column("url", sa.Text),
)

party_parcels = sa.Table(
    "party_parcels",
    metadata,
    sa.Column("party_id", sa.Text, primary_key=True),
    sa.Column("parcel_id", sa.Text, primary_key=True),
)

party_history = sa.Table(
    "party_history",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("party_id", sa.Text),
    sa.Column("platform", sa.Text),
    sa.Column("scraped_at", sa.DateTime(timezone=True)),
    sa.Column("data", JSONB),
    sa.Column("task_id", sa.Text),
    sa.Column("lease_id", sa.Text),
    sa.Column("accepted_at", sa.DateTime(timezone=True)),
)

party_tasks_done = tasks_done_table("party_tasks_done", metadata)

_PARTY_FIELDS = (
    "name",
    "kind",
    "platform",
    "addresses",
    "source_url",
    "scraped_at",
    "extra",
    "task_id",
    "lease_id",
)


async def save_parties(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> set[tuple[str, str]]:
    """Append history; for each newest result, replace the party's current state.

    Each row has the `parties` columns plus `documents` (list of dicts), `parcel_ids`
    and `data` (the whole validated result, JSON-ready). Returns (task_id, lease_id)
    written; a row whose task is already done (by any lease) writes nothing.
    """
    if not rows:
        return set()
    history_fields = ("party_id", "platform", "scraped_at", "data", "task_id", "lease_id")
    written = await record_done(
        session,
        party_tasks_done,
        party_history,
        "uq_party_history_task_lease",
        [{k: row[k] for k in history_fields} for row in rows],
    )
    latest = newest_written(rows, written, "party_id")
    for row in latest.values():
        upsert = insert(parties).values(
            party_id=row["party_id"], **{f: row[f] for f in _PARTY_FIELDS}
        )
        stmt = upsert.on_conflict_do_update(
            index_elements=[parties.c.party_id],
            set_={**{f: upsert.excluded[f] for f in _PARTY_FIELDS}, "updated_at": sa.func.now()},
            where=parties.c.scraped_at <= upsert.excluded.scraped_at,
        ).returning(parties.c.party_id)
        if (await session.execute(stmt)).first() is None:
            continue  # an older result than the stored one: history only
        party_id = row["party_id"]
        await session.execute(
            sa.delete(party_documents).where(party_documents.c.party_id == party_id)
        )
        await session.execute(sa.delete(party_parcels).where(party_parcels.c.party_id == party_id))
        if row["documents"]:
            await session.execute(
                insert(party_documents).on_conflict_do_nothing(),
                [{"party_id": party_id, **d} for d in row["documents"]],
            )
        if row["parcel_ids"]:
            await session.execute(
                insert(party_parcels).on_conflict_do_nothing(),
                [{"party_id": party_id, "parcel_id": p} for p in sorted(set(row["parcel_ids"]))],
            )
    return written
