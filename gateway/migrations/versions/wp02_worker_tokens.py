"""Worker tokens: hashed credentials of the internal (worker) ports.

Only the SHA-256 of a token is stored (tokens are 256-bit random, so a fast hash is
enough: there is nothing to brute-force). A name is unique among live tokens of the
deployment, so `gateway tokens revoke NAME` is unambiguous; revoked rows are kept for
audit.

Revision ID: wp02_worker_tokens
Revises: 0001_baseline
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "wp02_worker_tokens"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = ("worker_tokens",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `worker_tokens`."""
    op.create_table(
        "worker_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False, unique=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("audience IN ('parcel', 'party')", name="ck_worker_tokens_audience"),
        sa.CheckConstraint("role IN ('worker', 'producer')", name="ck_worker_tokens_role"),
    )
    op.create_index(
        "uq_worker_tokens_live_name",
        "worker_tokens",
        ["name"],
        unique=True,
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    """Drop `worker_tokens`."""
    op.drop_table("worker_tokens")
