"""Audit trail: `audit_log`, append-only, each row hash-chained to the one before.

`seq` numbers the rows 1, 2, 3, ... without gaps: it is assigned under the audit
advisory lock from the last row (not from a sequence, whose values a rolled-back
transaction would burn), so a missing number means a removed row. `prev_hash` is the
previous row's `hash` (64 zeros for the first) and `hash` is SHA-256 over the row's
canonical JSON, `prev_hash` included (`gateway/audit/chain.py`).

Triggers refuse UPDATE, DELETE and TRUNCATE, so no code path (and no careless
operator) can change history; an owner who disables them is caught by
`gateway audit verify` instead. `id` is not part of the chain: it exists only so the
table has an ordinary key that nothing ever reuses.

Revision ID: audit_0001
Revises: 0001_baseline
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "audit_0001"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = ("audit",)
depends_on: str | Sequence[str] | None = None

_REFUSE = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    """Create `audit_log`, its indexes and the append-only triggers."""
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_role", sa.Text(), nullable=False),
        sa.Column("actor_user", sa.Text(), nullable=True),
        sa.Column("ip", sa.Text(), nullable=True),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("before", JSONB(), nullable=True),
        sa.Column("after", JSONB(), nullable=True),
        sa.Column("prev_hash", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
    )
    # The admin route's filters, each paged newest first by `seq`.
    op.create_index("ix_audit_log_actor", "audit_log", ["actor", "seq"])
    op.create_index("ix_audit_log_actor_user", "audit_log", ["actor_user", "seq"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "seq"])
    op.create_index("ix_audit_log_target", "audit_log", ["target", "seq"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.execute(_REFUSE)
    op.execute(
        "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log"
        " FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
    )


def downgrade() -> None:
    """Drop `audit_log` and its trigger function."""
    op.drop_table("audit_log")
    op.execute("DROP FUNCTION audit_log_append_only()")
