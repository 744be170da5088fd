"""Webhook delivery: `job_events.webhooks_pending` (the fan-out's outbox flag) and the
dispatcher's lease on `webhook_deliveries`.

Every job event is written with `webhooks_pending = true` in the transaction of the
change it describes; the fan-out claims pending events (`FOR UPDATE SKIP LOCKED`, through
the partial index), inserts their deliveries and clears the flag in one transaction, so no
event is lost between a job's change and its webhooks. Events written before this
migration are not delivered (the column is added as `false`, then defaults to `true`:
no table rewrite, no backlog of old events sent to new endpoints).

A delivery being sent is `sending` with `lease_until`: one replica holds it; a lease that
runs out (the replica died mid-send) puts it back to `pending`, same `webhook-id`.

Revision ID: webhooks_0002
Revises: webhooks_0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "webhooks_0002"
down_revision: str | Sequence[str] | None = "webhooks_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATES_OLD = "state IN ('pending', 'succeeded', 'failed', 'dead')"
_STATES_NEW = "state IN ('pending', 'sending', 'succeeded', 'failed', 'dead')"


def upgrade() -> None:
    """Add the outbox flag, the lease, and the `sending` state."""
    # Added false (existing events are history), then true for every new event.
    op.add_column(
        "job_events",
        sa.Column("webhooks_pending", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.alter_column("job_events", "webhooks_pending", server_default=sa.true())
    op.create_index(
        "ix_job_events_webhooks_pending",
        "job_events",
        ["created_at"],
        postgresql_where=sa.text("webhooks_pending"),
    )
    op.add_column("webhook_deliveries", sa.Column("lease_until", sa.DateTime(timezone=True)))
    op.drop_constraint("ck_webhook_deliveries_state", "webhook_deliveries", type_="check")
    op.create_check_constraint("ck_webhook_deliveries_state", "webhook_deliveries", _STATES_NEW)
    # Leases to take back (a replica died mid-send).
    op.create_index(
        "ix_webhook_deliveries_leased",
        "webhook_deliveries",
        ["lease_until"],
        postgresql_where=sa.text("state = 'sending'"),
    )


def downgrade() -> None:
    """Drop them (a delivery being sent goes back to pending)."""
    op.drop_index("ix_webhook_deliveries_leased", table_name="webhook_deliveries")
    op.execute("UPDATE webhook_deliveries SET state = 'pending' WHERE state = 'sending'")
    op.drop_constraint("ck_webhook_deliveries_state", "webhook_deliveries", type_="check")
    op.create_check_constraint("ck_webhook_deliveries_state", "webhook_deliveries", _STATES_OLD)
    op.drop_column("webhook_deliveries", "lease_until")
    op.drop_index("ix_job_events_webhooks_pending", table_name="job_events")
    op.drop_column("job_events", "webhooks_pending")
