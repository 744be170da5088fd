"""Parcel tables: the current row per parcel and the append-only result history.

The worker plane writes them (one accepted parcel result upserts `parcels` and appends
to `parcel_history`, whose unique (task_id, lease_id) makes a replayed result a no-op);
the public plane's built-in origin reads them.

Revision ID: 0002_parcels
Revises: 0001_baseline
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_parcels"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = ("parcels",)
depends_on: str | Sequence[str] | None = None


def _parcel_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("state", sa.String(2), nullable=False),
        sa.Column("county", sa.Text(), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=True),
        sa.Column("owner_name", sa.Text(), nullable=True),
        sa.Column("assessed_value", sa.Numeric(14, 2), nullable=True),
        sa.Column("tax_amount_due", sa.Numeric(14, 2), nullable=True),
        sa.Column("lien_status", sa.Text(), nullable=True),
        sa.Column("auction_date", sa.Date(), nullable=True),
        sa.Column("source_url", sa.Text(), nullable=True),
        sa.Column("scraped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "extra",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("lease_id", sa.Text(), nullable=False),
    ]


def upgrade() -> None:
    """Create `parcels` and `parcel_history`."""
    op.create_table(
        "parcels",
        sa.Column("parcel_id", sa.Text(), primary_key=True),
        *_parcel_columns(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_parcels_state_county", "parcels", ["state", "county"])
    op.create_index("ix_parcels_lien_status", "parcels", ["lien_status"])
    op.create_index("ix_parcels_tax_amount_due", "parcels", ["tax_amount_due"])
    op.create_table(
        "parcel_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("parcel_id", sa.Text(), nullable=False),
        *_parcel_columns(),
        sa.Column(
            "accepted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("task_id", "lease_id", name="uq_parcel_history_task_lease"),
    )
    op.create_index("ix_parcel_history_parcel", "parcel_history", ["parcel_id", "scraped_at"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("parcel_history")
    op.drop_table("parcels")
