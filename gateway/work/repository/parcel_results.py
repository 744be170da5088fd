"""SQL for parcel results: mark the task done, append `parcel_history`, upsert `parcels`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.work.hooks import AfterCommit, AroundUpsert
from gateway.work.repository.result_history import newest_written, record_done, tasks_done_table

metadata = sa.MetaData()

_FIELDS = (
    "state",
    "county",
    "platform",
    "address",
    "owner_name",
    "assessed_value",
    "tax_amount_due",
    "lien_status",
    "auction_date",
    "source_url",
    "scraped_at",
    "extra",
    "task_id",
    "lease_id",
)


def _columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("state", sa.String(2)),
        sa.Column("county", sa.Text),
        sa.Column("platform", sa.Text),
        sa.Column("address", sa.Text),
        sa.Column("owner_name", sa.Text),
        sa.Column("assessed_value", sa.Numeric(14, 2)),
        sa.Column("tax_amount_due", sa.Numeric(14, 2)),
        sa.Column("lien_status", sa.Text),
        sa.Column("auction_date", sa.Date),
        sa.Column("source_url", sa.Text),
        sa.Column("scraped_at", sa.DateTime(timezone=True)),
        sa.Column("extra", JSONB),
        sa.Column("task_id", sa.Text),
        sa.Column("lease_id", sa.Text),
    ]


parcels = sa.Table(
    "parcels",
    metadata,
    sa.Column("parcel_id", sa.Text, primary_key=True),
    *_columns(),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)

parcel_history = sa.Table(
    "parcel_history",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("parcel_id", sa.Text),
    *_columns(),
    sa.Column("accepted_at", sa.DateTime(timezone=True)),
)

parcel_tasks_done = tasks_done_table("parcel_tasks_done", metadata)


async def save_parcels(
    session: AsyncSession,
    rows: Sequence[dict[str, Any]],
    watch: AroundUpsert | None = None,
) -> tuple[set[tuple[str, str]], AfterCommit | None]:
    """Append history and upsert current rows; the (task_id, lease_id) written, and the
    `watch` hook's post-commit work (it wraps the upsert, see `gateway/work/hooks.py`).

    A row whose task is already done (by this lease or any other) is skipped, and so is
    its current-row upsert: a second result writes nothing. The current row only moves
    forward in `scraped_at`.
    """
    if not rows:
        return set(), None
    written = await record_done(
        session, parcel_tasks_done, parcel_history, "uq_parcel_history_task_lease", rows
    )
    latest = newest_written(rows, written, "parcel_id")
    if not latest:
        return written, None

    async def upsert() -> None:
        stmt = insert(parcels)
        stmt = stmt.on_conflict_do_update(
            index_elements=[parcels.c.parcel_id],
            set_={**{f: stmt.excluded[f] for f in _FIELDS}, "updated_at": sa.func.now()},
            where=parcels.c.scraped_at <= stmt.excluded.scraped_at,
        )
        await session.execute(stmt, list(latest.values()))

    if watch is None:
        await upsert()
        return written, None
    return written, await watch(latest, upsert)
