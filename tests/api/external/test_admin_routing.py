"""`GET/PUT /v1/admin/routing`: admins read and change Celery shares; others get 403;
bad shares and unknown routes are 422 problems that change nothing."""

from __future__ import annotations

import pytest

from gateway.core.settings import Settings
from gateway.core.settings.celery import CeleryRoute
from gateway.work.holder import LeaseHolder
from gateway.work.models import TaskIn
from gateway.work.plane import work_queue
from gateway.work.routing.shares import ShareStore
from tests.support.audit import TEST_ACTOR, audit_rows
from tests.support.public import PublicApp, public_app

pytestmark = pytest.mark.integration

ROUTES = [
    CeleryRoute(audience="parcel", platform="miami_dade", share=0.1, task="scrape_parcel"),
    CeleryRoute(audience="party", platform="*", kind="party_refresh", task="scrape_party"),
]
WORKER = LeaseHolder(1, "w1")
ROUTED = {"celery_broker_url": "amqp://guest:guest@127.0.0.1:5672//", "celery_routes": ROUTES}


async def _admin(app: PublicApp) -> str:
    await app.plane.users.set_role("root", "admin", actor=TEST_ACTOR)
    return await app.key(tier="free", user="root")


async def test_admins_read_and_change_shares(settings: Settings) -> None:
    async with public_app(settings, **ROUTED) as app:
        headers = {"X-API-Key": await _admin(app)}
        shown = await app.client.get("/v1/admin/routing", headers=headers)
        assert shown.status_code == 200
        body = shown.json()
        assert body["enabled"] is True
        assert [(r["id"], r["share"], r["set_by"]) for r in body["routes"]] == [
            ("parcel/miami_dade", 0.1, None),
            ("party/*/party_refresh", 0.0, None),
        ]

        changed = await app.client.put(
            "/v1/admin/routing", json={"shares": {"parcel/miami_dade": 0.5}}, headers=headers
        )
        assert changed.status_code == 200, changed.text
        route = changed.json()["routes"][0]
        assert (route["configured_share"], route["share"]) == (0.1, 0.5)
        assert route["set_by"].startswith("api_key:")
        assert route["set_by"].endswith("of user root")
        (change,) = changed.json()["history"]
        assert (change["route"], change["share"]) == ("parcel/miami_dade", 0.5)
        stored = await ShareStore(app.resources.redis, app.resources.key("celery", "shares")).read()
        assert stored["parcel/miami_dade"].share == 0.5
        # Audited as the admin's key, with the share before and after.
        (row,) = [
            r for r in await audit_rows(app.resources.sessionmaker) if r["action"] == "routing.set"
        ]
        assert row["actor"].startswith("api_key:")
        assert (row["actor_user"], row["target"]) == ("root", "routing:parcel/miami_dade")
        assert (row["before"], row["after"]) == ({"share": 0.1}, {"share": 0.5})


@pytest.mark.parametrize(
    ("shares", "loc"),
    [
        ({"parcel/miami_dade": 1.5}, ["body", "shares", "parcel/miami_dade"]),
        ({"parcel/miami_dade": -1}, ["body", "shares", "parcel/miami_dade"]),
        ({"parcel/miami_dade": 0.2, "parcel/nowhere": 0.2}, ["body", "shares", "parcel/nowhere"]),
        ({}, ["body", "shares"]),
        ({"parcel/miami_dade": "half"}, ["body", "shares", "parcel/miami_dade"]),
    ],
)
async def test_bad_changes_are_422_problems_and_change_nothing(
    settings: Settings, shares: dict[str, object], loc: list[str]
) -> None:
    async with public_app(settings, **ROUTED) as app:
        headers = {"X-API-Key": await _admin(app)}
        refused = await app.client.put(
            "/v1/admin/routing", json={"shares": shares}, headers=headers
        )
        assert refused.status_code == 422
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["status"] == 422
        assert loc in [e["loc"] for e in problem["errors"]]
        body = (await app.client.get("/v1/admin/routing", headers=headers)).json()
        assert [r["share"] for r in body["routes"]] == [0.1, 0.0]
        assert body["history"] == []


async def test_callers_without_the_admin_role_are_refused(settings: Settings) -> None:
    async with public_app(settings, **ROUTED) as app:
        headers = {"X-API-Key": await app.key(tier="free", user="alice")}
        assert (await app.client.get("/v1/admin/routing", headers=headers)).status_code == 403
        put = await app.client.put(
            "/v1/admin/routing", json={"shares": {"parcel/miami_dade": 1.0}}, headers=headers
        )
        assert put.status_code == 403
        assert (await app.client.get("/v1/admin/routing")).status_code in (401, 403)


async def test_without_routes_routing_is_shown_disabled(settings: Settings) -> None:
    async with public_app(settings) as app:
        headers = {"X-API-Key": await _admin(app)}
        body = (await app.client.get("/v1/admin/routing", headers=headers)).json()
        assert body == {"enabled": False, "routes": [], "history": []}
        put = await app.client.put(
            "/v1/admin/routing", json={"shares": {"parcel/x": 1.0}}, headers=headers
        )
        assert put.status_code == 422


async def test_draining_a_route_sends_its_waiting_tasks_to_native(settings: Settings) -> None:
    async with public_app(settings, **ROUTED) as app:
        headers = {"X-API-Key": await _admin(app)}
        put = {"shares": {"parcel/miami_dade": 1.0}}
        assert (await app.client.put("/v1/admin/routing", json=put, headers=headers)).is_success
        queue = work_queue(app.resources, "parcel")
        await queue.enqueue([TaskIn(platform="miami_dade", key=f"k{i}") for i in range(3)])
        assert (await queue.lease(WORKER, ["miami_dade"], 10)).tasks == []  # all on Celery

        user = {"X-API-Key": await app.key(tier="free", user="alice")}
        body = {"route": "parcel/miami_dade"}
        denied = await app.client.post("/v1/admin/routing/drain", json=body, headers=user)
        assert denied.status_code == 403
        drained = await app.client.post("/v1/admin/routing/drain", json=body, headers=headers)
        assert drained.status_code == 200, drained.text
        assert drained.json() == {"route": "parcel/miami_dade", "to_native": 3, "relabelled": 0}
        assert len((await queue.lease(WORKER, ["miami_dade"], 10)).tasks) == 3
        drains = [
            r
            for r in await audit_rows(app.resources.sessionmaker)
            if r["action"] == "routing.drain"
        ]
        assert [(r["target"], r["after"]) for r in drains] == [
            ("routing:parcel/miami_dade", {"to_native": 3, "relabelled": 0})
        ]

        # A route no longer configured can be drained too; a malformed id is a 422.
        gone = {"route": "parcel/removed_county"}
        answer = await app.client.post("/v1/admin/routing/drain", json=gone, headers=headers)
        assert answer.json()["to_native"] == 0
        bad = await app.client.post(
            "/v1/admin/routing/drain", json={"route": "nowhere"}, headers=headers
        )
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["loc"] == ["body", "route"]
