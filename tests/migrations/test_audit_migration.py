"""Revision `audit_0001` creates the append-only `audit_log` on its own branch, needing
nothing but the baseline, and its downgrade removes the table and its trigger function."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest
from alembic import command

from gateway.migrations.runner import alembic_config, upgrade_to_head
from tests.support.migrations import dsn, tables

pytestmark = pytest.mark.integration


async def test_the_audit_branch_stands_alone(fresh_database: str) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(fresh_database), "audit@head")
    found = await tables(fresh_database)
    assert "audit_log" in found
    assert not found & {"jobs", "users", "api_keys"}  # other branches are not needed for it


async def test_rows_go_in_and_never_change(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    conn = await asyncpg.connect(dsn(fresh_database))
    try:
        await conn.execute(
            "INSERT INTO audit_log (seq, at, actor, actor_role, action, target, prev_hash, hash)"
            " VALUES (1, now(), 'cli:ops', 'admin', 'cache.purge', 'cache:*', 'p', 'h')"
        )
        with pytest.raises(asyncpg.exceptions.UniqueViolationError):  # one row per seq
            await conn.execute(
                "INSERT INTO audit_log (seq, at, actor, actor_role, action, target,"
                " prev_hash, hash) VALUES (1, now(), 'x', 'admin', 'a.b', 't', 'p', 'h')"
            )
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute("UPDATE audit_log SET hash = 'x'")
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM audit_log")
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 1
    finally:
        await conn.close()


async def test_downgrading_the_branch_drops_only_its_table(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    await asyncio.to_thread(command.downgrade, alembic_config(fresh_database), "audit@-1")
    found = await tables(fresh_database)
    assert "audit_log" not in found
    assert {"jobs", "users", "api_keys"} <= found
    conn = await asyncpg.connect(dsn(fresh_database))
    try:
        gone = await conn.fetchval("SELECT to_regproc('audit_log_append_only')")
        assert gone is None
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    assert "audit_log" in await tables(fresh_database)
