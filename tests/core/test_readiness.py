"""`/ready` answers within READY_TIMEOUT_S whatever a dependency does, a partition included."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from gateway.core.audience import Audience
from gateway.core.readiness import drain_abandoned
from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import Settings
from gateway.process.monitor import ProcessMonitor
from tests.conftest import FACTORIES, app_client
from tests.support.holding_proxy import HoldingProxy
from tests.support.tcp_proxy import database_proxy

pytestmark = pytest.mark.integration

READY_TIMEOUT_S = 0.3
# Generous (5x). Before, cancelling a probe left SQLAlchemy's shielded connection close
# waiting on the dead socket, and the check waited with it (2.3 s here, 13 s in the field).
BOUND_S = 5 * READY_TIMEOUT_S


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[HoldingProxy]:
    """A proxy in front of this test's PostgreSQL, released and closed afterwards."""
    assert settings.database_url is not None
    held, _ = database_proxy(settings.database_url, HoldingProxy)
    await held.start()
    yield held
    held.release()
    await drain_abandoned()  # the abandoned probes end once packets flow again
    await held.close()


@pytest.fixture
async def resources_via(settings: Settings, proxy: HoldingProxy) -> AsyncIterator[Resources]:
    """Resources whose database connections go through `proxy`."""
    assert settings.database_url is not None
    assert settings.redis_url is not None
    tight = settings.model_copy(update={"ready_timeout_s": READY_TIMEOUT_S})
    urls = BackendUrls(settings.redis_url, proxy.url)
    async with open_resources(tight, urls) as resources:
        yield resources
        proxy.release()  # let the pool's connections close cleanly


async def test_ready_answers_in_time_while_postgres_is_partitioned(
    resources_via: Resources, proxy: HoldingProxy
) -> None:
    async with app_client(FACTORIES[Audience.PUBLIC](resources_via)) as client:
        assert (await client.get("/ready")).status_code == 200  # a pooled connection
        proxy.hold()
        for _ in range(2):  # the pooled connection, then a new one that never connects
            started = time.monotonic()
            response = await client.get("/ready")
            took = time.monotonic() - started
            assert response.status_code == 503
            assert response.json()["failing"] == ["database"]
            assert response.json()["checks"]["database"]["error"] == "timeout"
            assert took < BOUND_S, took


async def test_the_dependency_prober_is_bounded_the_same_way(
    resources_via: Resources, proxy: HoldingProxy
) -> None:
    prober = ProcessMonitor(
        resources_via.metrics.runtime,
        redis=resources_via.redis,
        engine=resources_via.engine,
        probe_timeout_s=READY_TIMEOUT_S,
    )
    assert await prober.probe_once() == {"redis": True, "database": True}
    proxy.hold()
    started = time.monotonic()
    assert await prober.probe_once() == {"redis": True, "database": False}
    assert time.monotonic() - started < BOUND_S
