"""Party tasks done: one row per task whose succeeded result is committed.

The party branch's copy of `0003_parcel_tasks_done` (whose docstring gives the design):
the results path writes a party result's records only in the transaction that inserted
its task id here, so a second result for the task from any lease writes nothing. The
backfill reads `party_history` once.

Revision ID: wp03_party_tasks_done
Revises: wp01_party
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "wp03_party_tasks_done"
down_revision: str | Sequence[str] | None = "wp01_party"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `party_tasks_done` and fill it from `party_history`."""
    op.create_table(
        "party_tasks_done",
        sa.Column("task_id", sa.Text(), primary_key=True),
        sa.Column("lease_id", sa.Text(), nullable=False),
        sa.Column(
            "done_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
        ),
    )
    op.execute(
        "INSERT INTO party_tasks_done (task_id, lease_id, done_at) "
        "SELECT DISTINCT ON (task_id) task_id, lease_id, accepted_at FROM party_history "
        "ORDER BY task_id, id"
    )


def downgrade() -> None:
    """Drop `party_tasks_done`."""
    op.drop_table("party_tasks_done")
