"""Webhook wake-ups: inserts into the delivery outboxes `NOTIFY gateway_webhooks`.

A statement-level trigger on `job_events`, `parcel_changes` and `webhook_deliveries`
inserts calls `pg_notify('gateway_webhooks', <table>)`. Every replica's delivery loop
LISTENs on the channel and steps at once instead of waiting for its next poll
(`WEBHOOK_DISPATCH_INTERVAL_S` stays the fallback: a notification is lost while a
listener reconnects, and nothing else depends on it).

Per statement, not per row: a batch insert of a thousand rows costs one call. PostgreSQL
also folds identical notifications of one transaction into one, and sends them only at
commit, so a listener never wakes for rows it cannot see yet. The cost is at commit: a
transaction that notified takes a cluster-wide lock on the notification queue while
committing, which serialises such commits (fine at thousands a second; see the README).

Works on PostgreSQL 11+ (`EXECUTE FUNCTION`); the trigger names are dropped first rather
than `CREATE OR REPLACE TRIGGER` (14+) so a re-run is harmless anywhere.

Revision ID: webhooks_0003
Revises: webhooks_0002
Depends on: watches_0001 (`parcel_changes`)
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "webhooks_0003"
down_revision: str | Sequence[str] | None = "webhooks_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "watches_0001"

CHANNEL = "gateway_webhooks"
TABLES = ("job_events", "parcel_changes", "webhook_deliveries")
_FUNCTION = "gateway_webhooks_notify"


def _trigger(table: str) -> str:
    return f"{table}_webhooks_notify"


def upgrade() -> None:
    """Create the notify function and one statement trigger per outbox table."""
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION {_FUNCTION}() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$
        """
    )
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {_trigger(table)} ON {table}")
        op.execute(
            f"CREATE TRIGGER {_trigger(table)} AFTER INSERT ON {table}"
            f" FOR EACH STATEMENT EXECUTE FUNCTION {_FUNCTION}()"
        )


def downgrade() -> None:
    """Drop the triggers and the function."""
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {_trigger(table)} ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {_FUNCTION}()")
