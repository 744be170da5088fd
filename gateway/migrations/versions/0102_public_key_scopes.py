"""Public plane: API keys carry the scopes chosen at creation.

`scopes` is NULL for every key made before scopes existed, and for keys made without
naming any: such a key follows its owner's role (what every key did until now), so the
migration changes nobody's access. See `gateway/public/permissions.py`.

Revision ID: 0102_public_key_scopes
Revises: 0101_public_users_keys
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0102_public_key_scopes"
down_revision: str | Sequence[str] | None = "0101_public_users_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable `api_keys.scopes` (a text array)."""
    op.add_column("api_keys", sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=True))


def downgrade() -> None:
    """Drop the column (keys go back to following their owner's role)."""
    op.drop_column("api_keys", "scopes")
