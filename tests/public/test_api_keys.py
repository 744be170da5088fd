"""API keys over HTTP: create, use, list, rotate, revoke; isolation between users."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.core.settings import Settings
from gateway.public.api_keys import hash_key
from tests.support.audit import TEST_ACTOR
from tests.support.public import metric_value, public_app, write_tiers

pytestmark = pytest.mark.integration


async def test_key_lifecycle_and_isolation(settings: Settings, tmp_path: Path) -> None:
    async with public_app(
        settings, tiers_file=write_tiers(tmp_path / "t.json"), api_key_cache_s=5
    ) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        bob = {"X-API-Key": await app.key(tier="free", user="bob")}

        created = await app.client.post("/v1/api-keys", json={"name": "ci"}, headers=alice)
        assert created.status_code == 201
        assert created.headers["cache-control"] == "no-store"
        new = created.json()
        assert new["key"].startswith("tlk_" + new["id"] + "_")
        assert new["tier"] == "free"
        assert new["user_uid"] == "alice"

        me = await app.client.get("/v1/me", headers={"X-API-Key": new["key"]})
        assert me.status_code == 200
        assert me.json()["kind"] == "api_key"
        assert me.json()["user_uid"] == "alice"

        # Only the hash is stored.
        async with app.resources.sessionmaker() as session:
            stored = (
                await session.execute(
                    text("SELECT secret_hash FROM api_keys WHERE id = :id"), {"id": new["id"]}
                )
            ).scalar_one()
        assert stored == hash_key(new["key"])
        assert new["key"].encode() not in stored

        alice_list = (await app.client.get("/v1/api-keys", headers=alice)).json()["items"]
        bob_list = (await app.client.get("/v1/api-keys", headers=bob)).json()["items"]
        assert new["id"] in {k["id"] for k in alice_list}
        assert new["id"] not in {k["id"] for k in bob_list}
        assert all("key" not in k for k in alice_list)
        assert {k["user_uid"] for k in bob_list} == {"bob"}

        # Bob can neither rotate nor revoke Alice's key: it does not exist for him.
        assert (
            await app.client.post(f"/v1/api-keys/{new['id']}/rotate", headers=bob)
        ).status_code == 404
        assert (
            await app.client.delete(f"/v1/api-keys/{new['id']}", headers=bob)
        ).status_code == 404

        rotated = await app.client.post(f"/v1/api-keys/{new['id']}/rotate", headers=alice)
        assert rotated.status_code == 200
        assert rotated.json()["id"] == new["id"]
        assert rotated.json()["key"] != new["key"]
        old = await app.client.get("/v1/me", headers={"X-API-Key": new["key"]})
        assert old.status_code == 401
        assert old.json()["reason"] == "invalid_api_key"
        fresh = {"X-API-Key": rotated.json()["key"]}
        assert (await app.client.get("/v1/me", headers=fresh)).status_code == 200

        revoked = await app.client.delete(f"/v1/api-keys/{new['id']}", headers=alice)
        assert revoked.status_code == 204
        after = await app.client.get("/v1/me", headers=fresh)
        assert after.status_code == 401
        assert after.json()["reason"] == "api_key_revoked"
        text_ = await app.metrics()
    assert metric_value(text_, "gateway_auth_failures_total", reason="api_key_revoked") == 1


async def test_non_admin_cannot_pick_another_tier_and_services_cannot_manage_keys(
    settings: Settings, tmp_path: Path
) -> None:
    tiers = write_tiers(
        tmp_path / "t.json",
        pro={"rate_per_s": 10, "burst": 10, "daily_quota": 0, "max_page_size": 50},
    )
    async with public_app(settings, tiers_file=tiers) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        service = {"X-API-Key": await app.key(tier="pro", user=None)}
        upgrade = await app.client.post(
            "/v1/api-keys", json={"name": "x", "tier": "pro"}, headers=alice
        )
        from_service = await app.client.get("/v1/api-keys", headers=service)
        bad_name = await app.client.post("/v1/api-keys", json={"name": ""}, headers=alice)
    assert upgrade.status_code == 403
    assert from_service.status_code == 403
    assert bad_name.status_code == 422


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_credentials"),
        ({"X-API-Key": "nope"}, "malformed_api_key"),
        ({"X-API-Key": "tlk_000000000000_" + "A" * 43}, "invalid_api_key"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "unsupported_scheme"),
        ({"Authorization": "Bearer abc"}, "firebase_disabled"),
        ({"Authorization": "Bearer abc", "X-API-Key": "x"}, "ambiguous_credentials"),
    ],
)
async def test_auth_failures_are_401_problems_with_reason(
    settings: Settings, headers: dict[str, str], reason: str
) -> None:
    async with public_app(settings) as app:
        response = await app.client.get("/v1/properties/P-1", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == reason


async def test_failed_auth_is_rate_limited_per_client_ip(settings: Settings) -> None:
    async with public_app(settings, auth_failure_limit=3, auth_failure_window_s=60) as app:
        bad = {"X-API-Key": "tlk_000000000000_" + "B" * 43}
        statuses = [(await app.client.get("/v1/me", headers=bad)).status_code for _ in range(5)]
        blocked = await app.client.get("/v1/me", headers=bad)
    assert statuses == [401, 401, 401, 429, 429]
    assert blocked.json()["type"].endswith("/auth-attempts-exceeded")
    assert 1 <= int(blocked.headers["retry-after"]) <= 60


async def test_anonymous_tier_is_limited_per_client_ip(settings: Settings, tmp_path: Path) -> None:
    tiers = write_tiers(
        tmp_path / "t.json",
        anon={"rate_per_s": 0.001, "burst": 2, "daily_quota": 0, "max_page_size": 5},
    )
    async with public_app(settings, tiers_file=tiers, anonymous_tier="anon") as app:
        responses = [await app.client.get("/v1/me") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].json()["kind"] == "anonymous"
    assert responses[0].json()["tier"]["name"] == "anon"


async def test_database_outage_during_key_lookup_is_503_not_500(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.support.tcp_proxy import database_proxy

    assert settings.database_url is not None
    proxy, proxied = database_proxy(settings.database_url)
    await proxy.start()
    try:
        async with public_app(
            settings,
            database_url=proxied,
            tiers_file=write_tiers(tmp_path / "t.json"),
            api_key_cache_s=0,
        ) as app:
            key = {"X-API-Key": await app.key(tier="free")}
            assert (await app.client.get("/v1/me", headers=key)).status_code == 200
            await proxy.cut()
            down = await app.client.get("/v1/me", headers=key)
            await proxy.restore()
    finally:
        await proxy.close()
    assert down.status_code == 503
    assert down.json()["dependency"] == "database"
    assert "retry-after" in down.headers


async def test_requests_in_flight_when_a_cached_key_expires_share_one_lookup(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.kit.ttl_cache import TtlCache
    from gateway.public import api_keys
    from gateway.public.repository import api_keys as repo

    lookups = 0
    real_get = repo.get

    async def counted_get(session: Any, key_id: str) -> Any:
        nonlocal lookups
        lookups += 1
        return await real_get(session, key_id)

    monkeypatch.setattr(repo, "get", counted_get)
    # The key cache's clock is the test's: it stands still during a batch (on the real
    # clock a slow batch outlived the 0.3 s entry and looked the key up again) and jumps
    # past the entry's expiry between batches (no sleep).
    now = [0.0]
    monkeypatch.setattr(api_keys, "TtlCache", functools.partial(TtlCache, clock=lambda: now[0]))
    async with public_app(
        settings, tiers_file=write_tiers(tmp_path / "t.json"), api_key_cache_s=0.3
    ) as app:
        key = {"X-API-Key": await app.key(tier="free")}
        lookups = 0  # creating the key read it back
        for _ in range(2):  # a cold cache, then an expired entry
            responses = await asyncio.gather(
                *(app.client.get("/v1/me", headers=key) for _ in range(40))
            )
            assert {r.status_code for r in responses} == {200}
            now[0] += 0.35
    assert lookups == 2


async def test_a_lookup_that_raced_a_rotation_is_not_cached(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.public.repository import api_keys as repo

    real_get = repo.get
    read_done = asyncio.Event()
    rotated = asyncio.Event()
    armed = False

    async def slow_get(session: Any, key_id: str) -> Any:
        nonlocal armed
        row = await real_get(session, key_id)
        if armed:  # only the request's lookup: create() and rotate() read the row too
            armed = False
            read_done.set()
            await rotated.wait()  # the old row was read; the rotation lands now
        return row

    monkeypatch.setattr(repo, "get", slow_get)
    async with public_app(
        settings, tiers_file=write_tiers(tmp_path / "t.json"), api_key_cache_s=60
    ) as app:
        issued = await app.plane.api_keys.create(
            name="race", tier="free", user_uid="alice", actor=TEST_ACTOR
        )
        old = {"X-API-Key": issued.secret}
        armed = True
        in_flight = asyncio.create_task(app.client.get("/v1/me", headers=old))
        await read_done.wait()
        await app.plane.api_keys.rotate(issued.row.id, owner="alice", actor=TEST_ACTOR)
        rotated.set()
        assert (await in_flight).status_code == 200  # it was in flight before the rotation
        after = await app.client.get("/v1/me", headers=old)
    assert after.status_code == 401
    assert after.json()["reason"] == "invalid_api_key"
