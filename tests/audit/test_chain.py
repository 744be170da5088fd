"""The chain: appends stay linear under concurrency, and every kind of tampering with
the rows (SQL run by someone who can bypass the append-only triggers) is reported at
the first broken link."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from structlog.testing import capture_logs

from gateway.audit.actions import Action
from gateway.audit.actor import Actor
from gateway.audit.chain import GENESIS, ChainedRow, hash_of
from gateway.audit.service import AuditLog, refuse_secrets
from gateway.audit.verify import verify_chain
from gateway.core.errors import DependencyUnavailable
from gateway.core.resources import Resources
from gateway.kit.outage import session_scope
from tests.support.audit import TEST_ACTOR, audit_rows
from tests.support.migrations import dsn
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


async def _append(resources: Resources, n: int) -> None:
    audit = AuditLog(resources.sessionmaker)
    for i in range(n):
        await audit.record_alone(
            TEST_ACTOR, Action.USER_SET_TIER, f"user:u{i}", {"tier": "free"}, {"tier": "pro"}
        )


@contextlib.asynccontextmanager
async def _owner_connection(resources: Resources) -> AsyncIterator[asyncpg.Connection]:
    """A connection that skips the append-only triggers, as a table owner could."""
    conn = await asyncpg.connect(dsn(str(resources.settings.database_url)))
    try:
        await conn.execute("SET session_replication_role = replica")
        yield conn
    finally:
        await conn.close()


async def test_rows_chain_from_genesis_and_verify(resources: Resources) -> None:
    await _append(resources, 3)
    rows = await audit_rows(resources.sessionmaker)
    assert [r["seq"] for r in rows] == [1, 2, 3]
    assert rows[0]["prev_hash"] == GENESIS
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    assert rows[0]["before"] == {"tier": "free"}
    assert rows[0]["at"] <= rows[1]["at"] <= rows[2]["at"]

    verdict = await verify_chain(resources.sessionmaker)
    assert verdict.ok
    assert (verdict.rows, verdict.head_seq, verdict.head_hash) == (3, 3, rows[2]["hash"])


async def test_an_empty_trail_verifies(resources: Resources) -> None:
    verdict = await verify_chain(resources.sessionmaker)
    assert verdict.ok
    assert (verdict.rows, verdict.head_seq, verdict.head_hash) == (0, 0, GENESIS)


async def test_concurrent_appends_from_many_sessions_form_one_line(resources: Resources) -> None:
    # Writers on separate connections, as on several replicas: the advisory lock makes
    # each append see the one before it.
    await asyncio.gather(*(_append(resources, 5) for _ in range(8)))
    rows = await audit_rows(resources.sessionmaker)
    assert [r["seq"] for r in rows] == list(range(1, 41))
    assert (await verify_chain(resources.sessionmaker)).ok


async def test_a_rolled_back_action_leaves_no_row_and_no_gap(resources: Resources) -> None:
    audit = AuditLog(resources.sessionmaker)
    await _append(resources, 1)

    async def failing_action() -> None:
        async with session_scope(resources.sessionmaker, write=True) as session:
            await audit.record(session, TEST_ACTOR, Action.API_KEY_REVOKE, "api_key:x")
            raise RuntimeError("the action failed after its audit row")

    with pytest.raises(RuntimeError, match="failed after"):
        await failing_action()
    await _append(resources, 1)
    assert [r["seq"] for r in await audit_rows(resources.sessionmaker)] == [1, 2]
    assert (await verify_chain(resources.sessionmaker)).ok


async def test_the_table_refuses_updates_deletes_and_truncation(resources: Resources) -> None:
    await _append(resources, 1)
    conn = await asyncpg.connect(dsn(str(resources.settings.database_url)))
    try:
        for sql in (
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(sql)
    finally:
        await conn.close()
    assert len(await audit_rows(resources.sessionmaker)) == 1


async def test_an_altered_row_is_reported(resources: Resources) -> None:
    await _append(resources, 4)
    async with _owner_connection(resources) as conn:
        await conn.execute("""UPDATE audit_log SET after = '{"tier": "free"}' WHERE seq = 2""")
    verdict = await verify_chain(resources.sessionmaker)
    assert not verdict.ok
    assert verdict.broken_at == 2
    assert verdict.problem is not None
    assert "altered" in verdict.problem
    assert verdict.rows == 1  # row 1 was checked and held


async def test_a_removed_row_is_reported(resources: Resources) -> None:
    await _append(resources, 4)
    async with _owner_connection(resources) as conn:
        await conn.execute("DELETE FROM audit_log WHERE seq = 3")
    verdict = await verify_chain(resources.sessionmaker)
    assert (verdict.ok, verdict.broken_at) == (False, 3)
    assert verdict.problem == "row 3 missing (removed)"


async def test_removed_and_renumbered_rows_are_reported(resources: Resources) -> None:
    # Closing the gap by renumbering changes the hashed `seq` of every later row.
    await _append(resources, 4)
    async with _owner_connection(resources) as conn:
        await conn.execute("DELETE FROM audit_log WHERE seq = 2")
        await conn.execute("UPDATE audit_log SET seq = seq - 1 WHERE seq > 2")
    verdict = await verify_chain(resources.sessionmaker)
    assert (verdict.ok, verdict.broken_at) == (False, 2)
    assert verdict.problem is not None
    assert "altered" in verdict.problem


async def test_a_row_rewritten_with_a_recomputed_hash_breaks_the_next_link(
    resources: Resources,
) -> None:
    await _append(resources, 4)
    rows = await audit_rows(resources.sessionmaker)
    forged = {**rows[1], "actor": "cli:nobody"}
    forged_hash = hash_of(ChainedRow(**forged))
    async with _owner_connection(resources) as conn:
        await conn.execute(
            "UPDATE audit_log SET actor = 'cli:nobody', hash = $1 WHERE seq = 2", forged_hash
        )
    verdict = await verify_chain(resources.sessionmaker)
    assert (verdict.ok, verdict.broken_at) == (False, 3)
    assert verdict.problem is not None
    assert "does not follow row 2" in verdict.problem


async def test_an_inserted_row_is_reported(resources: Resources) -> None:
    await _append(resources, 2)
    head = (await audit_rows(resources.sessionmaker))[-1]
    async with _owner_connection(resources) as conn:
        await conn.execute(
            "INSERT INTO audit_log (seq, at, actor, actor_role, action, target, prev_hash, hash)"
            " VALUES (3, now(), 'cli:ghost', 'admin', 'user.set_role', 'user:ghost', $1, $2)",
            head["hash"],
            "f" * 64,
        )
    verdict = await verify_chain(resources.sessionmaker)
    assert (verdict.ok, verdict.broken_at) == (False, 3)


async def test_removing_the_newest_rows_is_caught_against_a_recorded_head(
    resources: Resources,
) -> None:
    await _append(resources, 3)
    recorded = await verify_chain(resources.sessionmaker)
    head = (recorded.head_seq, recorded.head_hash)
    assert (await verify_chain(resources.sessionmaker, expect_head=head)).ok
    await _append(resources, 1)  # a later row does not disturb the recorded head
    assert (await verify_chain(resources.sessionmaker, expect_head=head)).ok
    # A chain recomputed from row 3 on would still link, but not to the recorded head.
    rewritten = await verify_chain(resources.sessionmaker, expect_head=(3, "0" * 64))
    assert (rewritten.ok, rewritten.broken_at) == (False, 3)
    assert rewritten.problem == "row 3 is not the expected head (the chain was rewritten)"

    async with _owner_connection(resources) as conn:
        await conn.execute("DELETE FROM audit_log WHERE seq >= 3")
    assert (await verify_chain(resources.sessionmaker)).ok  # the chain alone cannot tell
    verdict = await verify_chain(resources.sessionmaker, expect_head=head)
    assert (verdict.ok, verdict.broken_at) == (False, 3)
    assert verdict.problem is not None
    assert "removed" in verdict.problem


def test_anything_that_looks_like_a_credential_is_refused() -> None:
    key = "tlk_0123456789ab_" + "A" * 43
    token = "gwt_parcel_" + "b" * 43
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2ln"
    for summary in ({"note": key}, {"nested": [{"x": token}]}, {"claims": jwt}):
        with pytest.raises(ValueError, match="credential"):
            refuse_secrets(summaries=(summary,))
    for field in ("secret", "token_hash", "Key"):
        with pytest.raises(ValueError, match="field"):
            refuse_secrets(summaries=({field: "x"},))
    with pytest.raises(ValueError, match="credential"):
        refuse_secrets(f"api_key:{key}")
    refuse_secrets("api_key:0123456789ab", summaries=({"name": "ci", "tier": "free"}, None))


async def test_record_refuses_a_secret_and_writes_nothing(resources: Resources) -> None:
    audit = AuditLog(resources.sessionmaker)
    actor = Actor(principal="user:alice", role="admin")
    with pytest.raises(ValueError, match="field"):
        await audit.record_alone(actor, Action.API_KEY_CREATE, "api_key:x", after={"key": "k"})
    assert await audit_rows(resources.sessionmaker) == []


async def test_a_row_that_cannot_be_written_is_a_503_and_a_log_line() -> None:
    # Nothing listens on this port: PostgreSQL is "down" for this audit log.
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    audit = AuditLog(async_sessionmaker(engine))
    try:
        with capture_logs() as logs, pytest.raises(DependencyUnavailable):
            await audit.record_alone(TEST_ACTOR, Action.CACHE_PURGE, "cache:*", after={"purged": 2})
    finally:
        await engine.dispose()
    (line,) = [entry for entry in logs if entry["event"] == "audit_write_failed"]
    assert (line["action"], line["target"], line["after"]) == (
        "cache.purge",
        "cache:*",
        {"purged": 2},
    )
