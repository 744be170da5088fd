"""Every audited action, through the routes and services that perform it, writes one row
naming who did it; failed actions write none; no secret ever reaches a row."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.audit.actor import Actor
from gateway.audit.verify import verify_chain
from gateway.core.settings import Settings
from gateway.work.plane import WorkerPlane
from tests.support.audit import TEST_ACTOR, audit_rows
from tests.support.jobs import jobs_harness
from tests.support.public import public_app, write_tiers

pytestmark = pytest.mark.integration


def _trail_text(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=str)


def _assert_secret_absent(text: str, secret: str) -> None:
    assert secret not in text
    # Nor its stored forms (API keys: SHA-256 bytes; worker tokens: SHA-256 hex).
    digest = hashlib.sha256(secret.encode())
    assert digest.hexdigest() not in text
    assert secret.split("_")[-1] not in text  # nor the random part on its own


async def test_api_key_lifecycle_over_http_is_recorded_without_secrets(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        alice_key = await app.key(tier="free", user="alice")
        alice = {"X-API-Key": alice_key}
        alice_key_id = alice_key.split("_")[1]

        created = await app.client.post(
            "/v1/api-keys", json={"name": "ci"}, headers={**alice, "X-Request-ID": "req-create"}
        )
        assert created.status_code == 201
        new = created.json()
        rotated = await app.client.post(f"/v1/api-keys/{new['id']}/rotate", headers=alice)
        assert rotated.status_code == 200
        revoked = await app.client.delete(f"/v1/api-keys/{new['id']}", headers=alice)
        assert revoked.status_code == 204
        # A refused action (already revoked) writes nothing.
        again = await app.client.delete(f"/v1/api-keys/{new['id']}", headers=alice)
        assert again.status_code == 404

        rows = await audit_rows(app.resources.sessionmaker)
        verdict = await verify_chain(app.resources.sessionmaker)

    assert [(r["action"], r["target"]) for r in rows] == [
        ("api_key.create", f"api_key:{alice_key_id}"),  # the set-up key (TEST_ACTOR)
        ("api_key.create", f"api_key:{new['id']}"),
        ("api_key.rotate", f"api_key:{new['id']}"),
        ("api_key.revoke", f"api_key:{new['id']}"),
    ]
    assert rows[0]["actor"] == TEST_ACTOR.principal
    create, rotate, revoke = rows[1:]
    assert {k: create[k] for k in ("actor", "actor_role", "actor_user", "ip", "request_id")} == {
        "actor": f"api_key:{alice_key_id}",
        "actor_role": "user",
        "actor_user": "alice",
        "ip": "127.0.0.1",
        "request_id": "req-create",
    }
    assert create["before"] is None
    assert create["after"] == {
        "name": "ci",
        "tier": "free",
        "user_uid": "alice",
        "scopes": None,  # follows the owner's role
        "revoked": False,
    }
    assert rotate["request_id"] == rotated.headers["x-request-id"]
    assert (revoke["before"]["revoked"], revoke["after"]["revoked"]) == (False, True)
    assert verdict.ok
    assert verdict.rows == 4

    text = _trail_text(rows)
    for secret in (alice_key, new["key"], rotated.json()["key"]):
        _assert_secret_absent(text, secret)


async def test_cache_purge_over_http_is_recorded_for_admins_only(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        await app.plane.users.set_role("root", "admin", actor=TEST_ACTOR)
        root = {"X-API-Key": await app.key(tier="free", user="root")}
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        refused = await app.client.post("/v1/admin/cache/purge", json={}, headers=alice)
        assert refused.status_code == 403
        purged = await app.client.post(
            "/v1/admin/cache/purge", json={"pattern": "/v1/properties/*"}, headers=root
        )
        assert purged.status_code == 200
        rows = await audit_rows(app.resources.sessionmaker)
    actions = [r["action"] for r in rows]
    assert actions == ["user.set_role", "api_key.create", "api_key.create", "cache.purge"]
    set_role, purge = rows[0], rows[-1]
    assert (set_role["target"], set_role["before"], set_role["after"]) == (
        "user:root",
        None,
        {"role": "admin"},
    )
    assert (purge["target"], purge["after"]) == ("cache:/v1/properties/*", {"purged": 0})
    assert (purge["actor_user"], purge["actor_role"]) == ("root", "admin")


async def test_admin_job_closes_are_recorded_in_their_transaction(settings: Settings) -> None:
    async with jobs_harness(settings) as h:
        alice = await h.key(user="alice")
        admin = {"X-API-Key": await h.admin_key()}
        first = (await h.submit(alice, ["aud-1", "aud-2"])).json()
        second = (await h.submit(alice, ["aud-3"])).json()
        forced = await h.public.patch(
            f"/v1/admin/jobs/{first['id']}",
            json={"state": "failed", "reason": "portal retired"},
            headers=admin,
        )
        assert forced.status_code == 200
        cancelled = await h.public.post(
            f"/v1/admin/jobs/{second['id']}/cancel", json={}, headers=admin
        )
        assert cancelled.status_code == 200
        # An owner's own cancel is not an operator action; a refused one writes nothing.
        third = (await h.submit(alice, ["aud-4"])).json()
        own = await h.public.post(f"/v1/jobs/{third['id']}/cancel", headers={"X-API-Key": alice})
        assert own.status_code == 200
        late = await h.public.post(f"/v1/admin/jobs/{second['id']}/cancel", headers=admin)
        assert late.status_code == 409
        rows = [
            r for r in await audit_rows(h.resources.sessionmaker) if r["action"].startswith("job.")
        ]
    assert [(r["action"], r["target"]) for r in rows] == [
        ("job.force_state", f"job:{first['id']}"),
        ("job.cancel", f"job:{second['id']}"),
    ]
    force = rows[0]
    assert force["before"] == {"state": "queued", "owner": f"api_key:{alice.split('_')[1]}"}
    assert force["after"]["state"] == "failed"
    assert force["after"]["items_closed"] == 2
    assert force["after"]["reason"].startswith("portal retired (by api_key:")
    assert (force["actor_user"], force["actor_role"]) == ("root", "admin")


async def test_dead_letter_requeue_and_purge_are_recorded(settings: Settings) -> None:
    async with public_app(settings) as app:
        plane = WorkerPlane(app.resources, "party")
        operator = Actor(principal="cli:ops", role="admin", request_id="cli-1")
        ids = [f"t{i}" for i in range(150)]
        requeued = await plane.dead_letters.requeue(ids, actor=operator)
        purged = await plane.dead_letters.purge(["t1"], actor=operator)
        rows = await audit_rows(app.resources.sessionmaker)
    assert (requeued.requeued, purged) == (0, 0)  # none of them was dead
    requeue, purge = rows
    assert (requeue["action"], requeue["target"]) == (
        "dead_letters.requeue",
        "dead_letters:party",
    )
    assert requeue["after"] == {
        "asked": 150,
        "requeued": 0,
        "dropped": 0,
        "task_ids": ids[:100],  # bounded, however many were asked for
    }
    assert purge["after"] == {"asked": 1, "purged": 0, "task_ids": ["t1"]}
    assert purge["actor"] == "cli:ops"
