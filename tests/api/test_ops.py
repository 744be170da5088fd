"""Ops endpoints on every port: liveness, readiness (incl. a Redis outage), metrics."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from gateway.core.audience import Audience
from gateway.core.resources import BackendUrls, open_resources
from gateway.core.settings import Settings
from tests.conftest import FACTORIES, ClientFactory, app_client
from tests.support.tcp_proxy import redis_proxy

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("audience", list(Audience))
async def test_health_and_ready_on_every_port(
    client_for: ClientFactory, audience: Audience
) -> None:
    async with client_for(audience) as client:
        health = await client.get("/health")
        ready = await client.get("/ready")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"


async def _wait_for_status(client: httpx.AsyncClient, status: int, within_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        response = await client.get("/ready")
        if response.status_code == status:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"/ready never answered {status} within {within_s}s")


async def test_ready_follows_a_redis_outage_and_recovers(settings: Settings) -> None:
    assert settings.redis_url is not None
    proxy, proxied_url = redis_proxy(settings.redis_url)
    await proxy.start()
    proxied = settings.model_copy(update={"redis_url": proxied_url})
    assert proxied.redis_url
    assert proxied.database_url
    try:
        async with (
            open_resources(proxied, BackendUrls(proxied.redis_url, proxied.database_url)) as res,
            app_client(FACTORIES[Audience.PUBLIC](res)) as client,
        ):
            assert (await client.get("/ready")).status_code == 200

            await proxy.cut()
            took = await _wait_for_status(client, 503, within_s=5)
            down = await client.get("/ready")
            assert down.headers["content-type"] == "application/problem+json"
            assert down.json()["failing"] == ["redis"]
            assert down.json()["checks"]["database"]["status"] == "ok"
            assert took < 5
            # Liveness is unaffected by a dependency outage.
            assert (await client.get("/health")).status_code == 200

            await proxy.restore()
            await _wait_for_status(client, 200, within_s=10)
    finally:
        await proxy.close()


async def test_metrics_are_per_port_and_labelled(client_for: ClientFactory) -> None:
    async with client_for(Audience.PUBLIC) as public, client_for(Audience.PARCEL) as parcel:
        await public.get("/health")
        await parcel.get("/internal/info")
        public_text = (await public.get("/metrics")).text
        parcel_text = (await parcel.get("/metrics")).text
    assert (
        'http_requests_total{audience="public",handler="/health",method="GET",status="200"}'
        in public_text
    )
    assert 'handler="/internal/info"' in parcel_text
    assert 'handler="/internal/info"' not in public_text
    for text, audience in ((public_text, "public"), (parcel_text, "parcel")):
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert samples
        for line in samples:
            assert f'audience="{audience}"' in line, line
    assert "gateway_build_info" in public_text
