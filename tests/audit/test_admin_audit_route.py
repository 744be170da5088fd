"""`GET /v1/admin/audit`: admins only, every filter, keyset pages, 422 for bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.audit.actions import Action
from gateway.audit.actor import Actor
from gateway.audit.service import AuditLog
from gateway.core.settings import Settings
from tests.support.audit import TEST_ACTOR
from tests.support.public import PublicApp, public_app, write_tiers

pytestmark = pytest.mark.integration

ALICE_KEY = Actor(principal="api_key:aaaaaaaaaaaa", role="user", user="alice", ip="10.0.0.1")
BOB = Actor(principal="user:bob", role="admin", user="bob", request_id="r-bob")
CLI = Actor(principal="cli:ops", role="admin", request_id="cli-1")


@pytest.fixture
async def app(settings: Settings, tmp_path: Path) -> AsyncIterator[PublicApp]:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as served:
        yield served


async def _admin(app: PublicApp) -> dict[str, str]:
    await app.plane.users.set_role("root", "admin", actor=TEST_ACTOR)
    return {"X-API-Key": await app.key(tier="free", user="root")}


async def _seed(app: PublicApp) -> None:
    audit = AuditLog(app.resources.sessionmaker)
    await audit.record_alone(ALICE_KEY, Action.API_KEY_CREATE, "api_key:k1", after={"name": "a"})
    await audit.record_alone(
        BOB, Action.USER_SET_TIER, "user:alice", {"tier": None}, {"tier": "pro"}
    )
    await audit.record_alone(CLI, Action.API_KEY_REVOKE, "api_key:k1")
    await audit.record_alone(CLI, Action.CACHE_PURGE, "cache:*", after={"purged": 3})


async def _get(app: PublicApp, headers: dict[str, str], **params: Any) -> Any:
    response = await app.client.get("/v1/admin/audit", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_only_admins_read_the_trail(app: PublicApp) -> None:
    alice = {"X-API-Key": await app.key(tier="free", user="alice")}
    refused = await app.client.get("/v1/admin/audit", headers=alice)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await app.client.get("/v1/admin/audit")).status_code in {401, 403}


async def test_filters_and_newest_first(app: PublicApp) -> None:
    admin = await _admin(app)  # writes user.set_role and api_key.create rows of its own
    await _seed(app)

    everything = (await _get(app, admin))["items"]
    assert [r["seq"] for r in everything] == [6, 5, 4, 3, 2, 1]
    newest = everything[0]
    assert {k: newest[k] for k in ("actor", "actor_role", "action", "target", "after")} == {
        "actor": "cli:ops",
        "actor_role": "admin",
        "action": "cache.purge",
        "target": "cache:*",
        "after": {"purged": 3},
    }
    assert newest["prev_hash"] == everything[1]["hash"]

    def actions(body: Any) -> list[str]:
        return [r["action"] for r in body["items"]]

    # `actor` matches the principal, or the user behind a key.
    assert actions(await _get(app, admin, actor="cli:ops")) == ["cache.purge", "api_key.revoke"]
    assert actions(await _get(app, admin, actor="alice")) == ["api_key.create"]
    assert actions(await _get(app, admin, actor="api_key:aaaaaaaaaaaa")) == ["api_key.create"]
    # `action` is exact with a dot, a family without.
    assert actions(await _get(app, admin, action="api_key.revoke")) == ["api_key.revoke"]
    assert actions(await _get(app, admin, action="api_key")) == [
        "api_key.revoke",
        "api_key.create",
        "api_key.create",
    ]
    assert actions(await _get(app, admin, target="user:alice")) == ["user.set_tier"]
    assert actions(await _get(app, admin, target="api_key:k1", actor="cli:ops")) == [
        "api_key.revoke"
    ]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert (await _get(app, admin, since=future))["items"] == []
    assert len((await _get(app, admin, since=past))["items"]) == 6
    assert (await _get(app, admin, actor="nobody"))["items"] == []


async def test_pages_follow_the_cursor_without_repeats(app: PublicApp) -> None:
    admin = await _admin(app)
    await _seed(app)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        body = await _get(app, admin, **params)
        seen += [r["seq"] for r in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [6, 5, 4, 3, 2, 1]
    assert pages == 2
    # Rows appended after the first page do not shift the pages that follow.
    first = await _get(app, admin, limit=2, action="api_key")
    await AuditLog(app.resources.sessionmaker).record_alone(
        CLI, Action.API_KEY_REVOKE, "api_key:k2"
    )
    rest = await _get(app, admin, limit=10, action="api_key", cursor=first["next_cursor"])
    assert [r["seq"] for r in first["items"] + rest["items"]] == [5, 3, 2]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "2026-01-01T00:00:00"}, "since"),  # no time zone
        ({"since": "yesterday"}, "since"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJrIjotM30"}, "cursor"),  # {"k":-3}
        ({"action": "API_KEY"}, "action"),
        ({"action": "a.b.c"}, "action"),
        ({"limit": "0"}, "limit"),
        ({"actor": "x" * 201}, "actor"),
    ],
)
async def test_bad_parameters_are_422_problems(
    app: PublicApp, params: dict[str, str], field: str
) -> None:
    admin = await _admin(app)
    response = await app.client.get("/v1/admin/audit", params=params, headers=admin)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert field in {str(e["loc"][-1]) for e in problem["errors"]}
