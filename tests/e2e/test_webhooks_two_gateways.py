"""Webhook delivery across real `gateway serve` processes on one PostgreSQL: two replicas
send each attempt exactly once, and a replica killed (SIGKILL) mid-send leaves its
delivery to another, which sends it again with the same `webhook-id`.

The in-process harness (its own delivery switched off) registers endpoints and queues
deliveries; only the gateway processes deliver.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from gateway.core.settings import Settings
from tests.support.gateway_process import GatewayProcess, replica_env, start_gateway
from tests.support.jobs import PLATFORMS, JobsHarness, jobs_harness
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
async def h(settings: Settings) -> AsyncIterator[JobsHarness]:
    """In-process apps on the same backends (API calls), delivering nothing themselves."""
    async with jobs_harness(
        settings, webhook_allow_private_networks=True, webhook_delivery=False
    ) as harness:
        yield harness


def gateway_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **replica_env(settings),
        "JOB_PLATFORMS": json.dumps(PLATFORMS),
        "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
        **extra,
    }


async def started(tmp_path: Path, env: dict[str, str]) -> GatewayProcess:
    proc = start_gateway(tmp_path, env)
    await asyncio.to_thread(proc.wait_ready)
    return proc


async def endpoint(h: JobsHarness, key: str, url: str) -> dict[str, Any]:
    response = await h.public.post(
        "/v1/webhooks", json={"url": url, "events": ["job.completed"]}, headers={"X-API-Key": key}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def deliveries(h: JobsHarness, key: str, endpoint_id: str) -> list[dict[str, Any]]:
    response = await h.public.get(
        f"/v1/webhooks/{endpoint_id}/deliveries", params={"limit": 100}, headers={"X-API-Key": key}
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_two_gateway_processes_send_each_attempt_exactly_once(
    h: JobsHarness, settings: Settings, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    key = await h.key(tier="enterprise")
    hooks = [await endpoint(h, key, receiver.url("/ok")) for _ in range(3)]
    env = gateway_env(settings)
    gateways = [await started(tmp_path, env) for _ in range(2)]
    try:
        for hook in hooks:
            for _ in range(10):
                queued = await h.public.post(
                    f"/v1/webhooks/{hook['id']}/test", headers={"X-API-Key": key}
                )
                assert queued.status_code == 202, queued.text

        async def all_succeeded() -> bool:
            for hook in hooks:
                if any(d["state"] != "succeeded" for d in await deliveries(h, key, hook["id"])):
                    return False
            return True

        await wait_until(all_succeeded, what="every delivery succeeded")
    finally:
        codes = [await asyncio.to_thread(g.stop) for g in gateways]
    assert codes == [0, 0], "\n".join(g.output() for g in gateways)
    ids = [got.headers["webhook-id"] for got in receiver.received]
    assert len(ids) == 30
    assert len(set(ids)) == 30
    for hook in hooks:
        for delivery in await deliveries(h, key, hook["id"]):
            assert [a["attempt"] for a in delivery["attempts"]] == [1]


async def test_a_gateway_killed_mid_send_leaves_the_delivery_to_another(
    h: JobsHarness, settings: Settings, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    key = await h.key()
    hook = await endpoint(h, key, receiver.url("/slow"))
    doomed = await started(tmp_path, gateway_env(settings, WEBHOOK_TIMEOUT_S="60"))
    try:
        test = await h.public.post(f"/v1/webhooks/{hook['id']}/test", headers={"X-API-Key": key})
        assert test.status_code == 202, test.text
        await wait_until(lambda: len(receiver.received) == 1, what="the send on the wire")
    finally:
        # Killed, not stopped: nothing runs after the signal, no outcome is recorded.
        assert await asyncio.to_thread(doomed.stop, signal.SIGKILL) == -signal.SIGKILL
    [held] = await deliveries(h, key, hook["id"])
    assert (held["state"], held["attempts"]) == ("sending", [])

    async with h.resources.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE webhook_endpoints SET url = :u WHERE id = :id"),
            {"u": receiver.url("/ok"), "id": hook["id"]},
        )
        # Its lease (the attempt deadline + 30 s) ends now rather than in 90 s.
        await session.execute(
            text("UPDATE webhook_deliveries SET lease_until = now() WHERE id = :id"),
            {"id": held["id"]},
        )
    heir = await started(tmp_path, gateway_env(settings))
    try:

        async def delivered() -> bool:
            [current] = await deliveries(h, key, hook["id"])
            return bool(current["state"] == "succeeded")

        await wait_until(delivered, what="the other gateway sent it again")
    finally:
        assert await asyncio.to_thread(heir.stop) == 0, heir.output()
    first, again = receiver.received
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == held["id"]
    secret = hook["secret"]
    assert Webhook(secret).verify(first.body, first.headers) == Webhook(secret).verify(
        again.body, again.headers
    )
