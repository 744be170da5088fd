"""Operator commands are audited as `cli:<os user>`, and `gateway audit verify` reports
an intact chain (exit 0) or its first broken link (exit 1), as an operator runs them."""

from __future__ import annotations

import getpass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest

from gateway.core.resources import Resources
from gateway.core.settings import Settings
from tests.support.audit import audit_rows
from tests.support.gateway_process import run_gateway
from tests.support.migrations import dsn
from tests.support.public import write_tiers

pytestmark = pytest.mark.integration


def _env(settings: Settings, tiers: Path) -> dict[str, str]:
    return {
        "REDIS_URL": str(settings.redis_url),
        "DATABASE_URL": str(settings.database_url),
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "TIERS_FILE": str(tiers),
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "warning",
    }


async def test_cli_actions_are_audited_and_the_chain_verifies(
    settings: Settings, resources: Resources, tmp_path: Path
) -> None:
    env = _env(settings, write_tiers(tmp_path / "t.json"))

    def gateway(*args: str) -> str:
        done = run_gateway(list(args), env, tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout

    key = gateway("keys", "create", "--name", "site", "--tier", "free", "--user", "carol")
    key = key.strip().splitlines()[-1]
    gateway("users", "set-tier", "carol", "free")
    token = gateway("tokens", "create", "--audience", "parcel", "--name", "scraper-1")
    token = token.strip().splitlines()[-1]
    gateway("tokens", "revoke", "scraper-1")
    gateway("dlq", "purge", "--audience", "parcel", "--all")

    rows = await audit_rows(resources.sessionmaker)
    assert [(r["action"], r["target"]) for r in rows] == [
        ("api_key.create", f"api_key:{key.split('_')[1]}"),
        ("user.set_tier", "user:carol"),
        ("worker_token.create", "worker_token:scraper-1"),
        ("worker_token.revoke", "worker_token:scraper-1"),
        ("dead_letters.purge", "dead_letters:parcel"),
    ]
    assert {r["actor"] for r in rows} == {f"cli:{getpass.getuser()}"}
    assert {r["actor_role"] for r in rows} == {"admin"}
    assert all(r["request_id"].startswith("cli-") for r in rows)
    assert len({r["request_id"] for r in rows}) == 5  # one per command
    assert rows[2]["after"] == {"audience": "parcel", "role": "worker"}
    text = repr(rows)
    assert key not in text
    assert token not in text

    verified = run_gateway(["audit", "verify"], env, tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "OK: 5 rows" in verified.stdout
    head = verified.stdout.strip().splitlines()[-1].removeprefix("head ")
    assert head == f"5:{rows[-1]['hash']}"
    assert run_gateway(["audit", "verify", "--head", head], env, tmp_path).returncode == 0

    conn = await asyncpg.connect(dsn(str(settings.database_url)))
    try:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE audit_log SET target = 'user:dave' WHERE seq = 2")
    finally:
        await conn.close()
    broken = run_gateway(["audit", "verify"], env, tmp_path)
    assert broken.returncode == 1
    assert broken.stdout.startswith("BROKEN at row 2: row 2 altered")
    assert "1 rows verified before it" in broken.stdout


async def test_verify_refuses_a_malformed_head(settings: Settings, tmp_path: Path) -> None:
    env = _env(settings, write_tiers(tmp_path / "t.json"))
    done = run_gateway(["audit", "verify", "--head", "12:nothex"], env, tmp_path)
    assert done.returncode == 2
    assert "--head must be SEQ:HASH" in done.stderr
    missing = run_gateway(["audit", "verify", "--head", f"3:{'a' * 64}"], env, tmp_path)
    assert missing.returncode == 1  # an empty trail has no row 3: the tail was removed
    assert "BROKEN at row 1" in missing.stdout
