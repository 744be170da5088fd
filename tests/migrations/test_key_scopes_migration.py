"""Revision `0102_public_key_scopes` adds `api_keys.scopes`: NULL for every existing key
(which then follows its owner's role, as before), and its downgrade drops only it."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest
from alembic import command

from gateway.migrations.runner import alembic_config, upgrade_to_head
from tests.support.migrations import dsn

pytestmark = pytest.mark.integration


async def test_the_scopes_column_migration_keeps_old_keys_following_their_role(
    fresh_database: str,
) -> None:
    config = alembic_config(fresh_database)
    await asyncio.to_thread(command.upgrade, config, "0101_public_users_keys")
    conn = await asyncpg.connect(dsn(fresh_database))
    try:
        await conn.execute(
            "INSERT INTO api_keys (id, name, secret_hash, tier) VALUES ('k1', 'old', $1, 'free')",
            b"\0" * 32,
        )
        await asyncio.to_thread(upgrade_to_head, fresh_database)
        assert await conn.fetchval("SELECT scopes FROM api_keys WHERE id = 'k1'") is None
        await asyncio.to_thread(command.downgrade, config, "0101_public_users_keys")
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_keys'"
        )
        assert "scopes" not in {c["column_name"] for c in columns}
        assert await conn.fetchval("SELECT name FROM api_keys WHERE id = 'k1'") == "old"
    finally:
        await conn.close()
