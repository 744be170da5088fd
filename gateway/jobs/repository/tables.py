"""The job tables as SQLAlchemy Core objects (created by migration `jobs_0001`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

job_owners = sa.Table(
    "job_owners",
    metadata,
    sa.Column("owner", sa.Text, primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True)),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("audience", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("succeeded", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("cancelled", sa.Integer, nullable=False),
    sa.Column("expired", sa.Integer, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("deadline", sa.DateTime(timezone=True)),
    sa.Column("label", sa.Text),
    sa.Column("webhook", JSONB),
    sa.Column("cost_per_item", sa.Integer, nullable=False),
    sa.Column("upload_sha256", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event_seq", sa.Integer, nullable=False),
    sa.Column("check_at", sa.DateTime(timezone=True)),
    sa.Column("reconcile_from", sa.Integer, nullable=False),
    sa.Column("publish_check_at", sa.DateTime(timezone=True)),
    sa.Column("state_reason", sa.Text),
    sa.Column("download_gen", sa.Integer, nullable=False),
)

job_items = sa.Table(
    "job_items",
    metadata,
    sa.Column("job_id", sa.Text, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("task_id", sa.Text),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("job_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
