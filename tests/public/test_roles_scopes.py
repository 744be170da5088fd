"""Roles and API key scopes as a caller meets them: what a key may be given, what it may
do after its owner's role changes, and the last admin, who cannot be demoted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.core.settings import Settings
from gateway.public.permissions import Scope
from gateway.public.users import LastAdmin
from tests.support.audit import TEST_ACTOR
from tests.support.gateway_process import run_gateway
from tests.support.public import public_app, write_tiers

pytestmark = pytest.mark.integration


async def test_a_key_gets_the_scopes_asked_for_and_no_more_than_its_owner(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        owner = {"X-API-Key": await app.key(tier="free", user="carol")}
        narrow = await app.client.post(
            "/v1/api-keys", headers=owner, json={"name": "ro", "scopes": ["jobs:read"]}
        )
        beyond = await app.client.post(
            "/v1/api-keys", headers=owner, json={"name": "x", "scopes": ["admin:read"]}
        )
        unknown = await app.client.post(
            "/v1/api-keys", headers=owner, json={"name": "x", "scopes": ["jobs:delete"]}
        )
        ro = {"X-API-Key": narrow.json()["key"]}
        reads = await app.client.get("/v1/jobs", headers=ro)
        writes = await app.client.post("/v1/jobs", headers=ro, json={})
        lists_keys = await app.client.get("/v1/api-keys", headers=ro)
        listed = await app.client.get("/v1/api-keys", headers=owner)
    assert narrow.status_code == 201, narrow.text
    assert narrow.json()["scopes"] == ["jobs:read"]
    assert beyond.status_code == 403
    assert beyond.json()["type"].endswith("/missing-scope")
    assert beyond.json()["needed"] == ["admin:read"]
    assert unknown.status_code == 422
    assert "unknown scope" in unknown.text
    assert reads.status_code == 200
    assert writes.status_code == 403
    assert writes.json()["needed"] == "jobs:write"
    assert lists_keys.status_code == 403
    scopes = {k["name"]: k["scopes"] for k in listed.json()["items"]}
    assert scopes == {"ro": ["jobs:read"], "test": None}  # None: follows the owner's role


async def test_a_key_making_a_key_passes_on_at_most_its_own_scopes(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        issued = await app.plane.api_keys.create(
            name="minter",
            tier="free",
            user_uid="dave",
            actor=TEST_ACTOR,
            scopes=frozenset({Scope.KEYS_WRITE, Scope.JOBS_READ}),
        )
        minter = {"X-API-Key": issued.secret}
        more = await app.client.post(
            "/v1/api-keys", headers=minter, json={"name": "m", "scopes": ["jobs:write"]}
        )
        same = await app.client.post("/v1/api-keys", headers=minter, json={"name": "s"})
    assert more.status_code == 403
    assert same.status_code == 201, same.text
    assert same.json()["scopes"] == ["jobs:read", "keys:write"]


async def test_demoting_the_owner_takes_admin_rights_from_their_keys_at_once(
    settings: Settings, tmp_path: Path
) -> None:
    tiers = write_tiers(tmp_path / "t.json")
    # Keys are cached for API_KEY_CACHE_S; the role change drops this process's cache.
    async with public_app(settings, tiers_file=tiers, api_key_cache_s=60) as app:
        await app.plane.users.set_role("root", "admin", actor=TEST_ACTOR)
        await app.plane.users.set_role("erin", "admin", actor=TEST_ACTOR)
        key = {"X-API-Key": await app.key(tier="free", user="erin")}
        before = await app.client.get("/v1/admin/jobs", headers=key)
        await app.plane.users.set_role("erin", "operator", actor=TEST_ACTOR)
        as_operator = await app.client.get("/v1/admin/jobs", headers=key)
        audit_as_operator = await app.client.get("/v1/admin/audit", headers=key)
        await app.plane.users.set_role("erin", "user", actor=TEST_ACTOR)
        after = await app.client.get("/v1/admin/jobs", headers=key)
        own = await app.client.get("/v1/jobs", headers=key)
    assert before.status_code == 200
    assert as_operator.status_code == 200
    assert audit_as_operator.status_code == 403
    assert after.status_code == 403
    assert after.json()["needed"] == "admin:read"
    assert own.status_code == 200


async def test_the_last_admin_cannot_be_demoted(settings: Settings, tmp_path: Path) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        users = app.plane.users
        await users.set_role("only", "admin", actor=TEST_ACTOR)
        with pytest.raises(LastAdmin, match="only is the last admin") as refused:
            await users.set_role("only", "operator", actor=TEST_ACTOR)
        assert refused.value.status == 409
        await users.set_role("second", "admin", actor=TEST_ACTOR)
        # Two admins demoting each other at once: one stays.
        outcomes = await asyncio.gather(
            users.set_role("only", "user", actor=TEST_ACTOR),
            users.set_role("second", "user", actor=TEST_ACTOR),
            return_exceptions=True,
        )
        stayed = [await users.get(uid) for uid in ("only", "second")]
    assert sum(isinstance(o, LastAdmin) for o in outcomes) == 1
    assert sorted(row.role for row in stayed if row) == ["admin", "user"]


async def test_the_cli_refuses_to_demote_the_last_admin_in_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    env = {
        "REDIS_URL": str(settings.redis_url),
        "DATABASE_URL": str(settings.database_url),
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "TIERS_FILE": str(write_tiers(tmp_path / "t.json")),
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "warning",
    }
    made = run_gateway(["users", "set-role", "boss", "admin"], env, tmp_path)
    refused = run_gateway(["users", "set-role", "boss", "user"], env, tmp_path)
    operator = run_gateway(["users", "set-role", "ops", "operator"], env, tmp_path)
    assert made.returncode == 0, made.stderr
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0
    assert "boss is the last admin" in refused.stderr
    assert operator.returncode == 0, operator.stderr
    assert "role=operator" in operator.stdout
