"""`/v1/admin/users`: find, show, re-tier, re-role, disable and enable users.

Disabling is checked across two app instances sharing Redis and PostgreSQL, each with
its verified-credential caches on: the second instance refuses the user's key and token
as soon as the first one answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from pydantic import SecretStr

from gateway.core.settings import Settings
from tests.support.audit import TEST_ACTOR, audit_rows
from tests.support.public import PublicApp, public_app, write_tiers

pytestmark = pytest.mark.integration

SECRET = "admin-users-test-secret-of-at-least-32-characters"
ISSUER = "https://idp.example/auth"
AUDIENCE = "gateway-admin-tests"
ALICE = "idp.example/auth:alice"  # the user id the gateway gives the token's holder


def _bearer(sub: str = "alice") -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 3600}
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"}


@pytest.fixture
def admin_settings(settings: Settings, tmp_path: Path) -> Settings:
    # Caches on (long enough to outlive the test): refusal must not wait for them.
    return settings.model_copy(
        update={
            "tiers_file": write_tiers(
                tmp_path / "tiers.json",
                pro={"rate_per_s": 100, "burst": 1000, "daily_quota": 0, "max_page_size": 25},
            ),
            "jwt_hs256_secret": SecretStr(SECRET),
            "jwt_hs256_issuer": ISSUER,
            "jwt_hs256_audience": AUDIENCE,
            "user_cache_s": 300,
            "api_key_cache_s": 300,
        }
    )


async def _subscribed(app: PublicApp) -> None:
    async with asyncio.timeout(10):
        await app.plane.revocations.subscribed.wait()


@contextlib.asynccontextmanager
async def _two(settings: Settings) -> AsyncIterator[tuple[PublicApp, PublicApp]]:
    async with public_app(settings) as a, public_app(settings) as b:
        await _subscribed(a)
        await _subscribed(b)
        yield a, b


async def _admin_key(app: PublicApp) -> dict[str, str]:
    await app.plane.users.set_role("root", "admin", actor=TEST_ACTOR)
    return {"X-API-Key": await app.key(tier="free", user="root")}


async def test_disabling_refuses_the_users_key_and_token_on_another_instance_at_once(
    admin_settings: Settings,
) -> None:
    async with _two(admin_settings) as (a, b):
        admin = await _admin_key(a)
        assert (await b.client.get("/v1/me", headers=_bearer())).status_code == 200
        key = {"X-API-Key": await a.key(tier="free", user=ALICE)}
        # Both credentials verified and cached on instance b.
        for _ in range(2):
            assert (await b.client.get("/v1/me", headers=key)).status_code == 200
            assert (await b.client.get("/v1/me", headers=_bearer())).status_code == 200

        disabled = await a.client.post(f"/v1/admin/users/{ALICE}/disable", headers=admin)
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["disabled_at"] is not None

        by_token = await b.client.get("/v1/me", headers=_bearer())
        assert by_token.status_code == 401
        assert by_token.json()["reason"] == "user_disabled"
        by_key = await b.client.get("/v1/me", headers=key)
        assert by_key.status_code == 401
        assert by_key.json()["reason"] in {"api_key_revoked", "user_disabled"}
        assert (await a.client.get("/v1/me", headers=_bearer())).status_code == 401

        # Again: the same answer, and one audit row naming the revoked key.
        again = await a.client.post(f"/v1/admin/users/{ALICE}/disable", headers=admin)
        assert again.status_code == 200
        # (`last_seen_at` moved: the refused attempts above were seen.)
        assert {**again.json(), "last_seen_at": None} == {**disabled.json(), "last_seen_at": None}
        rows = [
            r for r in await audit_rows(a.resources.sessionmaker) if r["action"] == "user.disable"
        ]
        assert len(rows) == 1
        assert rows[0]["target"] == f"user:{ALICE}"
        assert rows[0]["actor_user"] == "root"
        (listed,) = (await a.client.get(f"/v1/admin/api-keys?user={ALICE}", headers=admin)).json()[
            "items"
        ]
        assert rows[0]["after"] == {"disabled": True, "revoked_keys": [listed["id"]]}
        assert listed["revoked_at"] is not None

        # Enabled again: the token works on every instance at once; the key stays revoked.
        enabled = await a.client.post(f"/v1/admin/users/{ALICE}/enable", headers=admin)
        assert enabled.status_code == 200
        assert enabled.json()["disabled_at"] is None
        assert (await b.client.get("/v1/me", headers=_bearer())).status_code == 200
        assert (await b.client.get("/v1/me", headers=key)).status_code == 401
        twice = await a.client.post(f"/v1/admin/users/{ALICE}/enable", headers=admin)
        assert {**twice.json(), "last_seen_at": None} == {**enabled.json(), "last_seen_at": None}
        actions = [r["action"] for r in await audit_rows(a.resources.sessionmaker)]
        assert actions.count("user.enable") == 1


async def test_a_revoked_key_and_a_demotion_reach_another_instance_at_once(
    admin_settings: Settings,
) -> None:
    async with _two(admin_settings) as (a, b):
        admin = await _admin_key(a)
        await a.plane.users.set_role("deputy", "admin", actor=TEST_ACTOR)
        deputy = {"X-API-Key": await a.key(tier="free", user="deputy")}
        leaked = {"X-API-Key": await a.key(tier="free", user=ALICE)}
        # Both verified and cached on instance b (caches of 300 s).
        for _ in range(2):
            assert (await b.client.get("/v1/me", headers=leaked)).status_code == 200
            assert (await b.client.get("/v1/admin/users", headers=deputy)).status_code == 200

        (key,) = (await a.client.get(f"/v1/admin/api-keys?user={ALICE}", headers=admin)).json()[
            "items"
        ]
        revoked = await a.client.post(f"/v1/admin/api-keys/{key['id']}/revoke", headers=admin)
        assert revoked.status_code == 200, revoked.text
        refused = await b.client.get("/v1/me", headers=leaked)
        assert (refused.status_code, refused.json()["reason"]) == (401, "api_key_revoked")

        demoted = await a.client.put(
            "/v1/admin/users/deputy/role", json={"role": "user"}, headers=admin
        )
        assert demoted.status_code == 200, demoted.text
        assert (await b.client.get("/v1/admin/users", headers=deputy)).status_code == 403


async def test_the_last_admin_cannot_be_disabled(admin_settings: Settings) -> None:
    async with public_app(admin_settings) as app:
        await _subscribed(app)
        admin = await _admin_key(app)
        refused = await app.client.post("/v1/admin/users/root/disable", headers=admin)
        assert refused.status_code == 409
        assert refused.json()["type"].endswith("/last-admin")
        shown = await app.client.get("/v1/admin/users/root", headers=admin)
        assert shown.json()["disabled_at"] is None
        # With a second admin, the first may be disabled (and then demoted freely).
        await app.plane.users.set_role("deputy", "admin", actor=TEST_ACTOR)
        deputy = {"X-API-Key": await app.key(tier="free", user="deputy")}
        assert (
            await app.client.post("/v1/admin/users/root/disable", headers=deputy)
        ).status_code == 200
        refused = await app.client.post("/v1/admin/users/deputy/disable", headers=deputy)
        assert refused.status_code == 409


async def test_admins_find_show_and_change_users(admin_settings: Settings) -> None:
    async with public_app(admin_settings) as app:
        await _subscribed(app)
        admin = await _admin_key(app)
        for uid in ("bob", "bobby", "carol"):
            await app.plane.users.record_seen(uid, f"{uid.upper()}@Example.com")

        found = await app.client.get("/v1/admin/users?q=bob", headers=admin)
        assert [u["uid"] for u in found.json()["items"]] == ["bob", "bobby"]
        by_email = await app.client.get("/v1/admin/users?q=carol@example", headers=admin)
        assert [u["uid"] for u in by_email.json()["items"]] == ["carol"]
        # `_` and `%` are literal characters, not patterns.
        assert (await app.client.get("/v1/admin/users?q=b_b", headers=admin)).json()["items"] == []

        first = (await app.client.get("/v1/admin/users?limit=2", headers=admin)).json()
        assert [u["uid"] for u in first["items"]] == ["bob", "bobby"]
        rest = (
            await app.client.get(
                f"/v1/admin/users?limit=2&cursor={first['next_cursor']}", headers=admin
            )
        ).json()
        assert [u["uid"] for u in rest["items"]] == ["carol", "root"]
        assert rest["next_cursor"] is None
        admins = (await app.client.get("/v1/admin/users?role=admin", headers=admin)).json()
        assert [u["uid"] for u in admins["items"]] == ["root"]

        tier = await app.client.put("/v1/admin/users/bob/tier", json={"tier": "pro"}, headers=admin)
        assert tier.status_code == 200, tier.text
        role = await app.client.put(
            "/v1/admin/users/bob/role", json={"role": "operator"}, headers=admin
        )
        assert role.status_code == 200
        shown = (await app.client.get("/v1/admin/users/bob", headers=admin)).json()
        assert (shown["tier"], shown["role"], shown["email"]) == (
            "pro",
            "operator",
            "BOB@Example.com",
        )
        rows = [
            (r["action"], r["target"], r["after"])
            for r in await audit_rows(app.resources.sessionmaker)
            if r["target"] == "user:bob"
        ]
        assert rows == [
            ("user.set_tier", "user:bob", {"tier": "pro"}),
            ("user.set_role", "user:bob", {"role": "operator"}),
        ]
        demote = await app.client.put(
            "/v1/admin/users/root/role", json={"role": "user"}, headers=admin
        )
        assert demote.status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "loc"),
    [
        ("PUT", "/v1/admin/users/bob/tier", {"tier": "platinum"}, 422, ["tier"]),
        ("PUT", "/v1/admin/users/bob/tier", {}, 422, ["body", "tier"]),
        ("PUT", "/v1/admin/users/bob/role", {"role": "root"}, 422, ["body", "role"]),
        ("GET", "/v1/admin/users?cursor=not-a-cursor", None, 422, ["query", "cursor"]),
        ("GET", "/v1/admin/users?limit=0", None, 422, ["query", "limit"]),
        ("GET", "/v1/admin/users?disabled=maybe", None, 422, ["query", "disabled"]),
        ("GET", "/v1/admin/users/nobody", None, 404, None),
        ("POST", "/v1/admin/users/nobody/disable", None, 404, None),
        ("POST", "/v1/admin/users/nobody/enable", None, 404, None),
    ],
)
async def test_bad_input_is_a_problem_and_changes_nothing(
    admin_settings: Settings,
    method: str,
    path: str,
    body: dict[str, object] | None,
    status: int,
    loc: list[str] | None,
) -> None:
    async with public_app(admin_settings) as app:
        admin = await _admin_key(app)
        before = await audit_rows(app.resources.sessionmaker)
        response = await app.client.request(method, path, json=body, headers=admin)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        if loc is not None:
            assert [e["loc"] for e in response.json()["errors"]] == [loc]
        assert await audit_rows(app.resources.sessionmaker) == before
        assert await app.plane.users.get("nobody") is None


async def test_an_operator_is_refused(admin_settings: Settings) -> None:
    async with public_app(admin_settings) as app:
        await app.plane.users.set_role("ops", "operator", actor=TEST_ACTOR)
        key = {"X-API-Key": await app.key(tier="free", user="ops")}
        refused = await app.client.post("/v1/admin/users/ops/disable", headers=key)
        assert refused.status_code == 403
        assert refused.json()["needed"] == "users:admin"
        assert (await app.client.get("/v1/admin/api-keys", headers=key)).status_code == 403
