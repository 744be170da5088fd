"""Webhook delivery rate: a token bucket per endpoint (`webhook_events_per_s` of its tier).

`rate_per_s` is the owner's tier rate when the endpoint was registered or last changed
(NULL: not limited; endpoints registered before this revision, until their next PATCH).
The bucket holds up to max(1, rate) tokens: `rate_tokens` at `rate_at` (NULL: full), so
its level at any time is min(capacity, rate_tokens + rate x elapsed). The dispatcher's
claim locks the endpoint row, spends one token per delivery it claims and leaves the rest
pending: over the rate a delivery waits, it is never dropped.

A partial index on pending deliveries by endpoint and due time serves the claim
(`gateway/webhooks/repository/claim.py`): which endpoints have pending deliveries (a loose
index scan), each one's oldest due, and its first few due in order, all without reading
the backlog behind them.

Revision ID: webhooks_0004
Revises: webhooks_0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "webhooks_0004"
down_revision: str | Sequence[str] | None = "webhooks_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the bucket's columns and the per-endpoint pending index."""
    op.add_column("webhook_endpoints", sa.Column("rate_per_s", sa.Float()))
    op.add_column("webhook_endpoints", sa.Column("rate_tokens", sa.Float()))
    op.add_column("webhook_endpoints", sa.Column("rate_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_webhook_deliveries_endpoint_pending",
        "webhook_deliveries",
        ["endpoint_id", "next_attempt_at", "id"],
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_webhook_deliveries_endpoint_pending", table_name="webhook_deliveries")
    op.drop_column("webhook_endpoints", "rate_at")
    op.drop_column("webhook_endpoints", "rate_tokens")
    op.drop_column("webhook_endpoints", "rate_per_s")
