"""Revision `0103_public_user_disabled` adds `users.disabled_at`: NULL (enabled) for every
existing user, and its downgrade drops only it."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest
from alembic import command

from gateway.migrations.runner import alembic_config, upgrade_to_head
from tests.support.migrations import dsn

pytestmark = pytest.mark.integration


async def test_the_disabled_column_leaves_existing_users_enabled(fresh_database: str) -> None:
    config = alembic_config(fresh_database)
    await asyncio.to_thread(command.upgrade, config, "0102_public_key_scopes")
    conn = await asyncpg.connect(dsn(fresh_database))
    try:
        await conn.execute("INSERT INTO users (uid, role) VALUES ('old', 'admin')")
        await asyncio.to_thread(upgrade_to_head, fresh_database)
        assert await conn.fetchval("SELECT disabled_at FROM users WHERE uid = 'old'") is None
        await asyncio.to_thread(command.downgrade, config, "0102_public_key_scopes")
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
        )
        assert "disabled_at" not in {c["column_name"] for c in columns}
        assert await conn.fetchval("SELECT role FROM users WHERE uid = 'old'") == "admin"
    finally:
        await conn.close()
