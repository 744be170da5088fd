"""Webhooks: `webhook_endpoints`, `webhook_deliveries` and `webhook_attempts`.

An endpoint belongs to one principal (`owner`, the limit key, as for jobs) and signs with
its current `secret`; after a rotation `previous_secret` keeps signing next to it until
`previous_secret_until`. A delivery is one event for one endpoint (its id is the
Standard Webhooks `webhook-id`, stable across retries); the dispatcher claims pending
ones through the partial index on `next_attempt_at`. Each attempt's outcome is kept in
`webhook_attempts` for the deliveries log. Deleting an endpoint deletes its log.

Revision ID: webhooks_0001
Revises: 0001_baseline
Depends on: jobs_0001 (the job events deliveries are made from)
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "webhooks_0001"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = ("webhooks",)
depends_on: str | Sequence[str] | None = "jobs_0001"

_NOW = sa.func.now()


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    ]


def upgrade() -> None:
    """Create the webhook tables and their indexes."""
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", ARRAY(sa.Text()), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("disabled_reason", sa.Text()),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text()),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True)),
        sa.Column("failing_since", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.CheckConstraint("cardinality(events) > 0", name="ck_webhook_endpoints_events"),
    )
    # An owner's endpoints newest first (the list and its keyset cursor).
    op.create_index(
        "ix_webhook_endpoints_owner_created",
        "webhook_endpoints",
        ["owner", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "endpoint_id",
            sa.Text(),
            sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("payload", JSONB(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.CheckConstraint(
            "state IN ('pending', 'succeeded', 'failed', 'dead')",
            name="ck_webhook_deliveries_state",
        ),
        # One delivery per event and endpoint: a fan-out that runs twice inserts nothing
        # the second time (ON CONFLICT DO NOTHING).
        sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_event"),
    )
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_created",
        "webhook_deliveries",
        ["endpoint_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_table(
        "webhook_attempts",
        sa.Column(
            "delivery_id",
            sa.Text(),
            sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("attempt", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("status", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False, server_default=""),
        sa.Column("next_retry_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    """Drop the webhook tables."""
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
