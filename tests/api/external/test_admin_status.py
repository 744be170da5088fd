"""`GET /v1/admin/status`: Redis, PostgreSQL and the Celery side (workers answering a
ping, queue depths, results lag), for admins only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.core.settings import Settings
from gateway.work.models import TaskIn
from tests.support.audit import TEST_ACTOR
from tests.support.celery import (
    broker_for,
    celery_settings,
    celery_worker,
    history_counts,
    require_broker,
    require_celery,
    routed_plane,
)
from tests.support.public import PublicApp, public_app
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


async def _admin(app: PublicApp) -> dict[str, str]:
    await app.plane.users.set_role("root", "admin", actor=TEST_ACTOR)
    return {"X-API-Key": await app.key(tier="free", user="root")}


def _component(body: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in body["components"] if c["name"] == name]
    component: dict[str, Any] = found
    return component


async def test_without_routes_celery_is_disabled_and_backends_are_ok(settings: Settings) -> None:
    async with public_app(settings) as app:
        user = {"X-API-Key": await app.key(tier="free", user="alice")}
        assert (await app.client.get("/v1/admin/status", headers=user)).status_code == 403
        answer = await app.client.get("/v1/admin/status", headers=await _admin(app))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "ok"
        assert [(c["name"], c["status"]) for c in body["components"]] == [
            ("redis", "ok"),
            ("database", "ok"),
            ("celery", "disabled"),
        ]


async def test_an_unreachable_broker_is_down(settings: Settings) -> None:
    require_celery()
    routed = celery_settings(settings, broker_for("amqp", "", ""), share=0.5)
    routed = routed.model_copy(update={"celery_broker_url": "amqp://guest:guest@127.0.0.1:1//"})
    async with public_app(routed) as app:
        body = (await app.client.get("/v1/admin/status", headers=await _admin(app))).json()
    celery = _component(body, "celery")
    assert body["status"] == "down"
    assert (celery["status"], celery["details"]["broker"]) == ("down", "down")
    assert celery["details"]["broker_error"]
    assert "guest" not in str(body)  # no URL, no credentials


async def test_workers_queue_depth_and_results_lag(settings: Settings, tmp_path: Path) -> None:
    require_celery()
    assert settings.redis_url is not None
    # Redis as broker with the test's key prefix: the ping broadcast reaches only this
    # test's worker (on a shared RabbitMQ, every worker of every test would answer).
    broker = broker_for("redis", settings.redis_url, settings.redis_key_prefix)
    require_broker(broker.url, broker.options)
    routed = celery_settings(settings, broker, share=1.0)
    route = routed.celery_routes[0]
    async with routed_plane(routed) as (resources, plane), public_app(routed) as app:
        headers = await _admin(app)

        async def celery() -> dict[str, Any]:
            body = (await app.client.get("/v1/admin/status", headers=headers)).json()
            return _component(body, "celery")

        first = await celery()
        assert (first["status"], first["details"]["workers"]) == ("degraded", [])
        outcome = await plane.enqueue([TaskIn(platform="alpha", key=f"k{i}") for i in range(3)])

        async def queued_in_broker() -> bool:
            depths = {q["name"]: q["messages"] for q in (await celery())["details"]["queues"]}
            return depths.get(route.queue) == 3

        await wait_until(queued_in_broker, within_s=30, what="three messages in the queue")
        assert (await celery())["details"]["waiting_for_dispatch"] == {"parcel": 0}

        with celery_worker(broker, route.queue, tmp_path):

            async def committed() -> bool:
                return set(await history_counts(resources)) == set(outcome.task_ids)

            await wait_until(committed, within_s=60, what="the Celery results")
            found: dict[str, Any] = {}

            async def healthy() -> bool:
                found.update(await celery())
                return bool(found["status"] == "ok")

            await wait_until(healthy, within_s=30, what="the worker answering a ping")
        details = found["details"]
        assert len(details["workers"]) == 1
        depths = {q["name"]: q for q in details["queues"]}
        assert depths[route.queue]["messages"] == 0
        assert depths[f"{routed.celery_results_queue}.parcel"]["messages"] == 0
        assert details["results"]["parcel"]["lag_s"] >= 0


async def test_rabbitmq_queue_depth_and_consumers(settings: Settings) -> None:
    require_celery()
    broker = broker_for("amqp", "", "")
    require_broker(broker.url, broker.options)
    routed = celery_settings(settings, broker, share=1.0)
    route = routed.celery_routes[0]
    async with routed_plane(routed) as (_, plane), public_app(routed) as app:
        headers = await _admin(app)
        await plane.enqueue([TaskIn(platform="alpha", key=f"k{i}") for i in range(2)])
        found: dict[str, dict[str, Any]] = {}

        async def queued() -> bool:
            body = (await app.client.get("/v1/admin/status", headers=headers)).json()
            found.update({q["name"]: q for q in _component(body, "celery")["details"]["queues"]})
            return bool(found[route.queue]["messages"] == 2)

        await wait_until(queued, within_s=30, what="two messages in the route's queue")
        assert found[route.queue]["consumers"] == 0  # no Celery worker on it
        # The gateway's own results consumer.
        assert found[f"{routed.celery_results_queue}.parcel"]["consumers"] == 1
