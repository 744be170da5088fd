"""Client jobs: `jobs`, `job_items`, `job_events` and `job_owners`.

A job is owned by one principal (`owner`, the principal's limit key) and carried out by
the worker plane: each item links to the queue task (`task_id`) that will produce its
data. The results path moves items out of `pending` in the same transaction that commits
the task (`gateway/jobs/tracker.py`), through the partial index on pending task ids, so a
batch whose tasks no job waits for costs one index probe.

`job_events` is the outbox of every job state change and progress step (per-job `seq`):
written in the transaction that makes the change, published to Redis after commit, and
re-published by the upkeep loop when a publish was lost (`publish_check_at`).
`job_owners` holds one row per owner, locked while a submission checks the owner's
budget and open jobs, so concurrent submissions of one owner are decided one at a time.

Revision ID: jobs_0001
Revises: 0001_baseline
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "jobs_0001"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = ("jobs",)
depends_on: str | Sequence[str] | None = None

_NOW = sa.func.now()


def upgrade() -> None:
    """Create the job tables and their indexes."""
    op.create_table(
        "job_owners",
        sa.Column("owner", sa.Text(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("succeeded", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cancelled", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("expired", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("deadline", sa.DateTime(timezone=True)),
        sa.Column("label", sa.Text()),
        sa.Column("webhook", JSONB()),
        sa.Column("cost_per_item", sa.Integer(), nullable=False),
        sa.Column("upload_sha256", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("event_seq", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("check_at", sa.DateTime(timezone=True)),
        sa.Column("reconcile_from", sa.Integer(), nullable=False, server_default="-1"),
        sa.Column("publish_check_at", sa.DateTime(timezone=True)),
        sa.Column("state_reason", sa.Text()),
        sa.Column("download_gen", sa.Integer(), nullable=False, server_default="1"),
        sa.CheckConstraint(
            "state IN ('submitting', 'queued', 'running', 'completed', 'partially_failed',"
            " 'failed', 'cancelled', 'expired')",
            name="ck_jobs_state",
        ),
        sa.CheckConstraint(
            "succeeded + failed + cancelled + expired <= total", name="ck_jobs_counts"
        ),
    )
    op.create_index("ix_jobs_owner_created", "jobs", ["owner", "created_at", "id"])
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])
    op.create_index(
        "ix_jobs_check_at", "jobs", ["check_at"], postgresql_where=sa.text("check_at IS NOT NULL")
    )
    op.create_index(
        "ix_jobs_publish_check_at",
        "jobs",
        ["publish_check_at"],
        postgresql_where=sa.text("publish_check_at IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_submitting",
        "jobs",
        ["created_at"],
        postgresql_where=sa.text("state = 'submitting'"),
    )
    # The open-jobs cap counts an owner's open jobs on every submission.
    op.create_index(
        "ix_jobs_owner_open",
        "jobs",
        ["owner"],
        postgresql_where=sa.text("state IN ('submitting', 'queued', 'running')"),
    )
    op.create_index(
        "ix_jobs_owner_upload",
        "jobs",
        ["owner", "upload_sha256"],
        postgresql_where=sa.text("upload_sha256 IS NOT NULL"),
    )
    op.create_table(
        "job_items",
        sa.Column(
            "job_id", sa.Text(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("idx", sa.Integer(), primary_key=True),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("task_id", sa.Text()),
        sa.Column("state", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "state IN ('pending', 'succeeded', 'failed', 'cancelled', 'expired')",
            name="ck_job_items_state",
        ),
    )
    op.create_index(
        "ix_job_items_pending_task",
        "job_items",
        ["task_id"],
        postgresql_where=sa.text("state = 'pending' AND task_id IS NOT NULL"),
    )
    op.create_table(
        "job_events",
        sa.Column(
            "job_id", sa.Text(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("data", JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )


def downgrade() -> None:
    """Drop the job tables."""
    op.drop_table("job_events")
    op.drop_table("job_items")
    op.drop_table("jobs")
    op.drop_table("job_owners")
