"""Firebase ID tokens against the REAL Firebase Auth emulator (firebase-tools)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from gateway.core.settings import Settings
from tests.support.firebase_emulator import AuthEmulator
from tests.support.gateway_process import run_gateway
from tests.support.public import public_app, write_tiers

pytestmark = pytest.mark.integration


@pytest.fixture
def emulated(
    settings: Settings, auth_emulator: AuthEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    """Settings pointing the gateway at the emulator (firebase-admin reads the env var)."""
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", auth_emulator.host)
    tiers = write_tiers(
        tmp_path / "t.json",
        pro={"rate_per_s": 50, "burst": 100, "daily_quota": 5000, "max_page_size": 100},
    )
    return settings.model_copy(
        update={
            "firebase_project_id": auth_emulator.project,
            "firebase_auth_emulator_host": auth_emulator.host,
            "tiers_file": tiers,
            "user_cache_s": 0,
        }
    )


def _email() -> str:
    return f"u{uuid.uuid4().hex[:10]}@example.com"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_sign_up_sign_in_and_call_records_the_user(
    emulated: Settings, auth_emulator: AuthEmulator
) -> None:
    email = _email()
    user = auth_emulator.sign_up(email)
    token = auth_emulator.sign_in(email)
    async with public_app(emulated) as app:
        me = await app.client.get("/v1/me", headers=_bearer(token))
        again = await app.client.get("/v1/me", headers=_bearer(token))
        async with app.resources.sessionmaker() as session:
            row = (
                await session.execute(
                    text(
                        "SELECT uid, email, tier, role, created_at, last_seen_at FROM users"
                        " WHERE uid = :uid"
                    ),
                    {"uid": user["localId"]},
                )
            ).one()
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["kind"] == "user"
    assert body["id"] == user["localId"]
    assert body["email"] == email
    assert body["role"] == "user"
    assert body["tier"]["name"] == "free"
    assert body["usage"]["today"] == 1
    assert again.json()["usage"]["today"] == 2
    assert row.email == email
    assert row.role == "user"
    assert row.last_seen_at >= row.created_at


async def test_custom_claims_set_tier_and_role(
    emulated: Settings, auth_emulator: AuthEmulator
) -> None:
    email = _email()
    uid = auth_emulator.sign_up(email)["localId"]
    auth_emulator.set_claims(uid, {"tier": "pro", "role": "admin"})
    token = auth_emulator.sign_in(email)
    async with public_app(emulated) as app:
        me = await app.client.get("/v1/me", headers=_bearer(token))
        purge = await app.client.post("/v1/admin/cache/purge", json={}, headers=_bearer(token))
    assert me.status_code == 200, me.text
    assert me.json()["tier"]["name"] == "pro"
    assert me.json()["role"] == "admin"
    assert me.headers["ratelimit-policy"].startswith('"burst";q=100;')
    assert purge.status_code == 200


async def test_disabled_user_is_refused_with_revocation_checks(
    emulated: Settings, auth_emulator: AuthEmulator
) -> None:
    email = _email()
    uid = auth_emulator.sign_up(email)["localId"]
    token = auth_emulator.sign_in(email)
    checked = emulated.model_copy(
        update={"firebase_check_revoked": True, "firebase_revocation_cache_s": 0}
    )
    async with public_app(checked) as app:
        before = await app.client.get("/v1/me", headers=_bearer(token))
        auth_emulator.update(uid, disableUser=True)
        after = await app.client.get("/v1/me", headers=_bearer(token))
    assert before.status_code == 200
    assert after.status_code == 401
    assert after.json()["reason"] == "user_disabled"


async def test_revoked_token_is_refused_only_with_revocation_checks(
    emulated: Settings, auth_emulator: AuthEmulator
) -> None:
    email = _email()
    uid = auth_emulator.sign_up(email)["localId"]
    token = auth_emulator.sign_in(email)
    await asyncio.sleep(1.1)  # validSince has 1 s resolution; revoke after the token's iat
    auth_emulator.update(uid, validSince=str(int(time.time())))
    checked = emulated.model_copy(
        update={"firebase_check_revoked": True, "firebase_revocation_cache_s": 0}
    )
    async with public_app(checked) as app:
        revoked = await app.client.get("/v1/me", headers=_bearer(token))
        fresh = await app.client.get("/v1/me", headers=_bearer(auth_emulator.sign_in(email)))
    async with public_app(emulated) as app:
        unchecked = await app.client.get("/v1/me", headers=_bearer(token))
    assert revoked.status_code == 401
    assert revoked.json()["reason"] == "token_revoked"
    assert fresh.status_code == 200
    assert unchecked.status_code == 200


def _unsigned(claims: dict[str, object]) -> str:
    def part(doc: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_expired_and_malformed_tokens_are_401_even_in_emulator_mode(
    emulated: Settings, auth_emulator: AuthEmulator
) -> None:
    now = int(time.time())
    project = auth_emulator.project
    expired = _unsigned(
        {
            "iss": f"https://securetoken.google.com/{project}",
            "aud": project,
            "sub": "someone",
            "iat": now - 7200,
            "exp": now - 3600,
        }
    )
    async with public_app(emulated) as app:
        old = await app.client.get("/v1/me", headers=_bearer(expired))
        garbage = await app.client.get("/v1/me", headers=_bearer("not.a.jwt"))
    assert old.status_code == 401
    assert old.json()["reason"] == "token_expired"
    assert garbage.status_code == 401
    assert garbage.json()["reason"] in {"invalid_token", "malformed_token"}


async def test_users_set_tier_cli_changes_the_callers_tier(
    emulated: Settings, auth_emulator: AuthEmulator, tmp_path: Path
) -> None:
    email = _email()
    uid = auth_emulator.sign_up(email)["localId"]
    token = auth_emulator.sign_in(email)
    env = {
        "REDIS_URL": str(emulated.redis_url),
        "DATABASE_URL": str(emulated.database_url),
        "REDIS_KEY_PREFIX": emulated.redis_key_prefix,
        "TIERS_FILE": str(emulated.tiers_file),
        "ENVIRONMENT": "test",
    }
    async with public_app(emulated) as app:
        assert (await app.client.get("/v1/me", headers=_bearer(token))).json()["tier"][
            "name"
        ] == "free"
        result = run_gateway(["users", "set-tier", uid, "pro"], env, tmp_path)
        assert result.returncode == 0, result.stderr
        role = run_gateway(["users", "set-role", uid, "admin"], env, tmp_path)
        assert role.returncode == 0, role.stderr
        bad = run_gateway(["users", "set-tier", uid, "platinum"], env, tmp_path)
        me = (await app.client.get("/v1/me", headers=_bearer(token))).json()
    assert me["tier"]["name"] == "pro"
    assert me["role"] == "admin"
    assert bad.returncode == 2
    assert "unknown tier" in bad.stderr


def test_production_refuses_the_emulator(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="FIREBASE_AUTH_EMULATOR_HOST"):
        Settings(
            _env_file=None,
            environment="production",
            redis_url="redis://127.0.0.1:6379/15",
            database_url="postgresql://postgres@127.0.0.1:5432/test",
            firebase_auth_emulator_host="127.0.0.1:9099",
        )
    env = {
        "ENVIRONMENT": "production",
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
        "FIREBASE_AUTH_EMULATOR_HOST": "127.0.0.1:9099",
        "FIREBASE_PROJECT_ID": "demo-gateway",
    }
    result = run_gateway(["serve"], env, tmp_path)
    assert result.returncode == 2
    assert "FIREBASE_AUTH_EMULATOR_HOST" in result.stderr
    assert "production" in result.stderr
