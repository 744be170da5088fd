"""Party tables: the current party, its documents and parcel links, and result history.

The worker plane writes them from accepted `PartyResult`s: `parties` holds the current
row (newest `scraped_at` wins), `party_documents` and `party_parcels` hold the documents
and parcel links of that newest result, and `party_history` appends every accepted result
with a UNIQUE (task_id, lease_id), so a replayed result never writes twice.

Revision ID: wp01_party
Revises: 0001_baseline
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "wp01_party"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = ("party",)
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    return sa.text("now()")


def upgrade() -> None:
    """Create `parties`, `party_documents`, `party_parcels` and `party_history`."""
    op.create_table(
        "parties",
        sa.Column("party_id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column(
            "addresses", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")
        ),
        sa.Column("source_url", sa.Text(), nullable=True),
        sa.Column("scraped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "extra", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("lease_id", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.CheckConstraint("kind IN ('person', 'organization')", name="ck_parties_kind"),
    )
    op.create_index("ix_parties_name", "parties", ["name"])
    op.create_table(
        "party_documents",
        sa.Column(
            "party_id",
            sa.Text(),
            sa.ForeignKey("parties.party_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("document_id", sa.Text(), primary_key=True),
        sa.Column("doc_type", sa.Text(), nullable=False),
        sa.Column("recorded_date", sa.Date(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
    )
    op.create_table(
        "party_parcels",
        sa.Column(
            "party_id",
            sa.Text(),
            sa.ForeignKey("parties.party_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        # No foreign key to `parcels`: a party may be scraped before its parcels are.
        sa.Column("parcel_id", sa.Text(), primary_key=True),
    )
    op.create_index("ix_party_parcels_parcel", "party_parcels", ["parcel_id"])
    op.create_table(
        "party_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("party_id", sa.Text(), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("scraped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("lease_id", sa.Text(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
        sa.UniqueConstraint("task_id", "lease_id", name="uq_party_history_task_lease"),
    )
    op.create_index("ix_party_history_party", "party_history", ["party_id", "scraped_at"])


def downgrade() -> None:
    """Drop the party tables."""
    op.drop_table("party_history")
    op.drop_table("party_parcels")
    op.drop_table("party_documents")
    op.drop_table("parties")
