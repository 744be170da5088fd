"""`gateway keys create|list|revoke` and `gateway cache purge` as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.core.settings import Settings
from tests.support.gateway_process import run_gateway
from tests.support.public import public_app, write_tiers

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


async def test_keys_create_list_revoke(settings: Settings, tmp_path: Path) -> None:
    tiers = write_tiers(tmp_path / "t.json")
    env = _env(settings, tiers)
    created = run_gateway(
        ["keys", "create", "--name", "ssr site", "--tier", "free", "--user", "svc-owner"],
        env,
        tmp_path,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.removesuffix("\n")
    assert key.startswith("tlk_")
    assert "\n" not in key  # stdout is the key alone: KEY=$(gateway keys create ...)
    assert "name:  ssr site" in created.stderr
    key_id = key.split("_")[1]

    listed = run_gateway(["keys", "list"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert key_id in listed.stdout
    assert key not in listed.stdout
    assert "ssr site" in listed.stdout
    as_json = run_gateway(["keys", "list", "--json"], env, tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    (row,) = [json.loads(line) for line in as_json.stdout.splitlines()]  # one per key
    assert (row["id"], row["name"], row["owner"], row["status"]) == (
        key_id,
        "ssr site",
        "svc-owner",
        "active",
    )
    assert key not in as_json.stdout

    async with public_app(settings, tiers_file=tiers, api_key_cache_s=0) as app:
        before = await app.client.get("/v1/me", headers={"X-API-Key": key})
        revoked = run_gateway(["keys", "revoke", key_id], env, tmp_path)
        after = await app.client.get("/v1/me", headers={"X-API-Key": key})
    assert before.status_code == 200
    assert before.json()["user_uid"] == "svc-owner"
    assert revoked.returncode == 0, revoked.stderr
    assert after.status_code == 401

    bad_tier = run_gateway(["keys", "create", "--name", "x", "--tier", "gold"], env, tmp_path)
    assert bad_tier.returncode == 2
    assert "unknown tier" in bad_tier.stderr


async def test_cache_purge_cli(settings: Settings, tmp_path: Path) -> None:
    tiers = write_tiers(tmp_path / "t.json")
    async with public_app(settings, tiers_file=tiers) as app:
        await app.resources.redis.set(
            app.resources.key("cache", "GET:/v1/properties/a?#free"), b"x"
        )
        await app.resources.redis.set(
            app.resources.key("cache", "GET:/v1/properties/b?#free"), b"x"
        )
        one = run_gateway(["cache", "purge", "/v1/properties/a*"], _env(settings, tiers), tmp_path)
        rest = run_gateway(["cache", "purge"], _env(settings, tiers), tmp_path)
    assert one.returncode == 0, one.stderr
    assert "purged 1 " in one.stdout
    assert "purged 1 " in rest.stdout


async def test_users_list_disable_enable(settings: Settings, tmp_path: Path) -> None:
    tiers = write_tiers(tmp_path / "t.json")
    env = _env(settings, tiers)
    created = run_gateway(
        ["keys", "create", "--name", "alice key", "--tier", "free", "--user", "alice"],
        env,
        tmp_path,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.removesuffix("\n")
    assert run_gateway(["users", "set-tier", "alice", "free"], env, tmp_path).returncode == 0

    listed = run_gateway(["users", "list", "--query", "ali", "--json"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["uid"], row["disabled_at"]) == ("alice", None)

    disabled = run_gateway(["users", "disable", "alice"], env, tmp_path)
    assert disabled.returncode == 0, disabled.stderr
    assert "alice: disabled since" in disabled.stdout
    async with public_app(settings, tiers_file=tiers, api_key_cache_s=0) as app:
        refused = await app.client.get("/v1/me", headers={"X-API-Key": key})
    assert refused.status_code == 401

    enabled = run_gateway(["users", "enable", "alice"], env, tmp_path)
    assert enabled.returncode == 0, enabled.stderr
    listed = run_gateway(["users", "list", "--json"], env, tmp_path)
    (row,) = [json.loads(line) for line in listed.stdout.splitlines() if '"alice"' in line]
    assert row["disabled_at"] is None

    unknown = run_gateway(["users", "disable", "nobody"], env, tmp_path)
    assert unknown.returncode != 0
    assert "Traceback" not in unknown.stderr
    assert "nobody" in unknown.stderr
