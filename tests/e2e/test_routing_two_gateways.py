"""A runtime split change (PUT /v1/admin/routing) on one real `gateway serve` process is
applied by another: both route the tasks enqueued through them afterwards by the new
share. Nothing here sleeps: each probe enqueues a fresh unit through one gateway and
reads the side it was given, until it is the expected one."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.public.plane import PublicPlane
from gateway.work.plane import work_queue
from tests.support.audit import TEST_ACTOR
from tests.support.celery import RABBITMQ_URL, delete_queues, require_broker, require_celery
from tests.support.gateway_process import GatewayProcess, replica_env, start_gateway
from tests.support.wait import wait_until
from tests.support.work import make_token

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROUTE_ID = "parcel/alpha"


@pytest.fixture
def routed_settings(settings: Settings) -> Iterator[Settings]:
    """The test's settings with one route (share 0) on queues of its own."""
    require_celery()
    require_broker(RABBITMQ_URL, {})
    tag = uuid.uuid4().hex[:10]
    route = {
        "audience": "parcel",
        "platform": "alpha",
        "share": 0.0,
        "task": "scrape_parcel",
        "queue": f"t{tag}.parcels",
    }
    routed = Settings.model_validate(
        {
            **settings.model_dump(),
            "celery_broker_url": RABBITMQ_URL,
            "celery_routes": [route],
            "celery_results_queue": f"t{tag}.results",
        }
    )
    try:
        yield routed
    finally:
        delete_queues(routed)


@pytest.fixture
def gateways(routed_settings: Settings, tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    """Two gateways on the test's backends, both with the route."""
    env = {
        **replica_env(routed_settings),
        "CELERY_BROKER_URL": RABBITMQ_URL,
        "CELERY_ROUTES": json.dumps([r.model_dump() for r in routed_settings.celery_routes]),
        "CELERY_RESULTS_QUEUE": routed_settings.celery_results_queue,
    }
    procs = [start_gateway(tmp_path, env) for _ in range(2)]
    try:
        for proc in procs:
            proc.wait_ready()
        yield procs
    finally:
        codes = [proc.stop() for proc in procs]
        assert codes == [0, 0], "\n".join(proc.output() for proc in procs)


async def test_a_share_set_on_one_gateway_routes_new_tasks_on_both(
    gateways: list[GatewayProcess], resources: Resources
) -> None:
    public = PublicPlane.build(resources)
    await public.users.set_role("root", "admin", actor=TEST_ACTOR)
    admin = {
        "X-API-Key": (
            await public.api_keys.create(name="t", tier="pro", user_uid="root", actor=TEST_ACTOR)
        ).secret
    }
    producer = {"X-Worker-Token": await make_token(resources)}
    queue = work_queue(resources, "parcel")
    keys = (f"u{i}" for i in itertools.count())

    async def side_of_a_new_task(gw: GatewayProcess) -> str:
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(
                gw.url("parcel", "/internal/tasks"),
                json={"tasks": [{"platform": "alpha", "key": next(keys)}]},
                headers=producer,
            )
        assert answer.status_code == 200, answer.text
        task = await queue.task(answer.json()["task_ids"][0])
        assert task is not None
        return "celery" if task.get("lane") == ROUTE_ID else "native"

    async def routes(gw: GatewayProcess, side: str) -> None:
        async def on_side() -> bool:
            return await side_of_a_new_task(gw) == side

        await wait_until(on_side, within_s=30, what=f"{gw.ports['public']} routing to {side}")

    a, b = gateways
    for gw in gateways:
        assert await side_of_a_new_task(gw) == "native"  # the configured share, 0
    async with httpx.AsyncClient(timeout=30) as client:
        put = await client.put(
            a.url("public", "/v1/admin/routing"), json={"shares": {ROUTE_ID: 1.0}}, headers=admin
        )
        assert put.status_code == 200, put.text
        for gw in gateways:
            await routes(gw, "celery")
        # B shows the change A recorded (who, the share in force).
        shown = (await client.get(b.url("public", "/v1/admin/routing"), headers=admin)).json()
        (route,) = shown["routes"]
        assert (route["share"], route["configured_share"]) == (1.0, 0.0)
        assert "of user root" in route["set_by"]

        back = await client.put(
            b.url("public", "/v1/admin/routing"), json={"shares": {ROUTE_ID: 0.0}}, headers=admin
        )
        assert back.status_code == 200, back.text
        for gw in gateways:
            await routes(gw, "native")
