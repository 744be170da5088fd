"""Proxy inventory: the outbound proxies workers lease through the gateway.

PostgreSQL holds the inventory (durable, managed with `gateway proxies`); the lease
state itself lives in Redis and is rebuilt from this table when Redis loses it.

Revision ID: proxies_0001
Revises: 0001_baseline
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "proxies_0001"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = ("proxies",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `proxies`."""
    op.create_table(
        "proxies",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("url", name="uq_proxies_url"),
    )


def downgrade() -> None:
    """Drop `proxies`."""
    op.drop_table("proxies")
