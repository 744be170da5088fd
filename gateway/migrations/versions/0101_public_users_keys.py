"""Public plane: users seen on the public port and their API keys.

`users` is filled on first sight of a Firebase user (or by `gateway keys create --user`);
tier and role are changed by ops with `gateway users set-tier|set-role`. `api_keys`
stores only a SHA-256 of each key: keys are 256-bit random secrets, so a fast hash is
as strong as a slow one here and keeps verification off the CPU budget.

Revision ID: 0101_public_users_keys
Revises: 0001_baseline
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0101_public_users_keys"
down_revision: str | Sequence[str] | None = "0001_baseline"
branch_labels: str | Sequence[str] | None = ("public",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `users` and `api_keys`."""
    op.create_table(
        "users",
        sa.Column("uid", sa.Text(), primary_key=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("tier", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=False, server_default="user"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "last_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("tier", sa.Text(), nullable=False),
        sa.Column(
            "user_uid", sa.Text(), sa.ForeignKey("users.uid", ondelete="CASCADE"), nullable=True
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_keys_user_uid", "api_keys", ["user_uid"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("api_keys")
    op.drop_table("users")
