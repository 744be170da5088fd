"""Parcel tasks done: one row per task whose succeeded result is committed.

Completion is a fact per task, not per lease: the results path inserts the task id here
(`ON CONFLICT DO NOTHING`) in the same transaction as the records, and writes the records
only when that insert wrote the row. A second result for the same task, from any lease
(a retry to another replica after one died between commit and release, or the redo of a
reclaimed lease), finds the row and writes nothing. `parcel_history` keeps its unique
(task_id, lease_id) and may hold older duplicates from before this revision, which is why
the fact is a table of its own rather than a unique index on `parcel_history.task_id`.

The backfill copies the first committed lease of every task already in history, so a
task completed before the upgrade is recognised as done too; it reads `parcel_history`
once (on a large history this is the slow part of the upgrade).

Revision ID: 0003_parcel_tasks_done
Revises: 0002_parcels
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_parcel_tasks_done"
down_revision: str | Sequence[str] | None = "0002_parcels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `parcel_tasks_done` and fill it from `parcel_history`."""
    op.create_table(
        "parcel_tasks_done",
        sa.Column("task_id", sa.Text(), primary_key=True),
        sa.Column("lease_id", sa.Text(), nullable=False),
        sa.Column(
            "done_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.execute(
        "INSERT INTO parcel_tasks_done (task_id, lease_id, done_at) "
        "SELECT DISTINCT ON (task_id) task_id, lease_id, accepted_at FROM parcel_history "
        "ORDER BY task_id, id"
    )


def downgrade() -> None:
    """Drop `parcel_tasks_done`."""
    op.drop_table("parcel_tasks_done")
