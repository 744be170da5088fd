"""Public plane: a user can be disabled (`users.disabled_at`).

NULL for every existing user, so the migration changes nobody's access. A disabled user's
bearer tokens are refused and their keys were revoked when they were disabled; see
`gateway/public/users.py` and `gateway/public/revocations.py`.

Revision ID: 0103_public_user_disabled
Revises: 0102_public_key_scopes
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0103_public_user_disabled"
down_revision: str | Sequence[str] | None = "0102_public_key_scopes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable `users.disabled_at`."""
    op.add_column("users", sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the column (every user is enabled again)."""
    op.drop_column("users", "disabled_at")
