"""`/v1/admin/api-keys` and `/v1/admin/worker-tokens`: every credential, for admins.

Keys of every user listed (filters, keyset pages) and revoked idempotently; worker
tokens created (shown once), listed and revoked, the revoked one refused by a worker port.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.settings import Settings
from gateway.work.plane import token_store
from tests.support.audit import TEST_ACTOR, audit_rows
from tests.support.public import PublicApp, public_app, write_tiers

pytestmark = pytest.mark.integration


@pytest.fixture
def tiered(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"tiers_file": write_tiers(tmp_path / "tiers.json")})


async def _admin(app: PublicApp) -> dict[str, str]:
    await app.plane.users.set_role("root", "admin", actor=TEST_ACTOR)
    return {"X-API-Key": await app.key(tier="free", user="root", name="root-key")}


async def test_admins_list_and_revoke_anyones_keys(tiered: Settings) -> None:
    async with public_app(tiered) as app:
        admin = await _admin(app)
        alice = await app.plane.api_keys.create(
            name="a1", tier="free", user_uid="alice", actor=TEST_ACTOR
        )
        await app.plane.api_keys.create(name="a2", tier="free", user_uid="alice", actor=TEST_ACTOR)
        await app.plane.api_keys.create(name="svc", tier="free", user_uid=None, actor=TEST_ACTOR)

        listed = (await app.client.get("/v1/admin/api-keys", headers=admin)).json()
        assert [k["name"] for k in listed["items"]] == ["svc", "a2", "a1", "root-key"]
        assert all("secret" not in str(k) and "hash" not in str(k) for k in listed["items"])
        first = (await app.client.get("/v1/admin/api-keys?limit=3", headers=admin)).json()
        rest = (
            await app.client.get(
                f"/v1/admin/api-keys?limit=3&cursor={first['next_cursor']}", headers=admin
            )
        ).json()
        assert [k["name"] for k in first["items"] + rest["items"]] == [
            "svc",
            "a2",
            "a1",
            "root-key",
        ]
        assert rest["next_cursor"] is None

        path = f"/v1/admin/api-keys/{alice.row.id}/revoke"
        revoked = await app.client.post(path, headers=admin)
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked_at"] is not None
        again = await app.client.post(path, headers=admin)
        assert again.json() == revoked.json()
        refused = await app.client.get("/v1/me", headers={"X-API-Key": alice.secret})
        assert refused.status_code == 401
        actions = [r["action"] for r in await audit_rows(app.resources.sessionmaker)]
        assert actions.count("api_key.revoke") == 1

        mine = await app.client.get("/v1/admin/api-keys?user=alice&revoked=true", headers=admin)
        assert [k["name"] for k in mine.json()["items"]] == ["a1"]
        live = await app.client.get("/v1/admin/api-keys?user=alice&revoked=false", headers=admin)
        assert [k["name"] for k in live.json()["items"]] == ["a2"]

        assert (
            await app.client.post("/v1/admin/api-keys/000000000000/revoke", headers=admin)
        ).status_code == 404
        for bad in ("/v1/admin/api-keys?cursor=%%%", "/v1/admin/api-keys?revoked=perhaps"):
            response = await app.client.get(bad, headers=admin)
            assert response.status_code == 422, bad
        assert (
            await app.client.post("/v1/admin/api-keys/NOT-A-KEY/revoke", headers=admin)
        ).status_code == 422


async def test_admins_create_list_and_revoke_worker_tokens(tiered: Settings) -> None:
    async with public_app(tiered) as app:
        admin = await _admin(app)
        body = {"audience": "parcel", "name": "scraper-1", "role": "producer"}
        created = await app.client.post("/v1/admin/worker-tokens", json=body, headers=admin)
        assert created.status_code == 201, created.text
        token = created.json()["token"]
        assert token.startswith("gwt_parcel_")
        store = token_store(app.resources)
        assert [r.name for r in await store.list()] == ["scraper-1"]
        duplicate = await app.client.post("/v1/admin/worker-tokens", json=body, headers=admin)
        assert duplicate.status_code == 409

        listed = (await app.client.get("/v1/admin/worker-tokens", headers=admin)).json()
        assert [(t["name"], t["audience"], t["role"]) for t in listed["items"]] == [
            ("scraper-1", "parcel", "producer")
        ]
        assert token not in str(listed)

        path = "/v1/admin/worker-tokens/scraper-1/revoke"
        assert (await app.client.post(path, headers=admin)).json() == {
            "name": "scraper-1",
            "revoked": True,
        }
        assert (await app.client.post(path, headers=admin)).status_code == 200
        assert (await app.client.get("/v1/admin/worker-tokens", headers=admin)).json()[
            "items"
        ] == []
        shown = (await app.client.get("/v1/admin/worker-tokens?revoked=true", headers=admin)).json()
        assert shown["items"][0]["revoked_at"] is not None
        actions = [r["action"] for r in await audit_rows(app.resources.sessionmaker)]
        assert (actions.count("worker_token.create"), actions.count("worker_token.revoke")) == (
            1,
            1,
        )
        assert token not in str(await audit_rows(app.resources.sessionmaker))

        unknown = await app.client.post("/v1/admin/worker-tokens/nobody/revoke", headers=admin)
        assert unknown.status_code == 404
        for bad in (
            {"audience": "public", "name": "x"},
            {"audience": "parcel", "name": ""},
            {"audience": "parcel", "name": "x", "role": "root"},
            {"audience": "parcel", "name": "has space"},
        ):
            response = await app.client.post("/v1/admin/worker-tokens", json=bad, headers=admin)
            assert response.status_code == 422, bad
            assert response.headers["content-type"].startswith("application/problem+json")
