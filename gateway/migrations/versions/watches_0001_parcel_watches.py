"""Parcel watches: `parcel_watches`, `parcel_watch_items` and `parcel_changes`.

A watch belongs to one principal (`owner`, the limit key, like a job) and names a
platform, parcel ids (`parcel_watch_items`) and the fields it cares about. The results
path looks watched parcels up by `parcel_watch_items`' primary key (`parcel_id` first),
so a batch of results nobody watches costs one index probe.

`parcel_changes` is the record and the outbox of `parcel.changed`: one row per watch and
changed parcel, written in the transaction that writes the parcel's new current row, with
`webhooks_pending = true` for the webhook fan-out (claimed `FOR UPDATE SKIP LOCKED`
through the partial index, like `job_events`). Its `id` is the event id clients see
(`pc_<id>`), and `(watch_id, id)` pages a watch's changes.

Revision ID: watches_0001
Revises: 0001_baseline
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "watches_0001"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = ("watches",)
depends_on: str | Sequence[str] | None = "0002_parcels"

_NOW = sa.func.now()


def upgrade() -> None:
    """Create the watch tables and their indexes."""
    op.create_table(
        "parcel_watches",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("fields", ARRAY(sa.Text()), nullable=False),
        sa.Column("parcel_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    # A caller's watches, newest first (listing, and counting against the tier's caps).
    op.create_index("ix_parcel_watches_owner", "parcel_watches", ["owner", "created_at", "id"])
    op.create_table(
        "parcel_watch_items",
        sa.Column("parcel_id", sa.Text(), primary_key=True),
        sa.Column(
            "watch_id",
            sa.Text(),
            sa.ForeignKey("parcel_watches.id", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    # For the cascade when a watch is deleted, and listing a watch's parcels.
    op.create_index("ix_parcel_watch_items_watch", "parcel_watch_items", ["watch_id"])
    op.create_table(
        "parcel_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column(
            "watch_id",
            sa.Text(),
            sa.ForeignKey("parcel_watches.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("parcel_id", sa.Text(), nullable=False),
        sa.Column("data", JSONB(), nullable=False),
        sa.Column("webhooks_pending", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.clock_timestamp(),
        ),
    )
    op.create_index("ix_parcel_changes_watch", "parcel_changes", ["watch_id", "id"])
    op.create_index(
        "ix_parcel_changes_webhooks_pending",
        "parcel_changes",
        ["created_at"],
        postgresql_where=sa.text("webhooks_pending"),
    )


def downgrade() -> None:
    """Drop the watch tables."""
    op.drop_table("parcel_changes")
    op.drop_table("parcel_watch_items")
    op.drop_table("parcel_watches")
