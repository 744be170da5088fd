"""`/ready` answers within READY_TIMEOUT_S whatever a dependency does, a partition included."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from gateway.core.audience import Audience
from gateway.core.readiness import drain_abandoned
from gateway.core.resources import BackendUrls, open_resources
from gateway.core.settings import Settings
from tests.conftest import FACTORIES, app_client
from tests.core.test_database import through
from tests.support.holding_proxy import HoldingProxy

pytestmark = pytest.mark.integration

READY_TIMEOUT_S = 0.3


async def test_ready_answers_in_time_while_postgres_is_partitioned(settings: Settings) -> None:
    assert settings.database_url is not None
    assert settings.redis_url is not None
    upstream = urlsplit(settings.database_url)
    proxy = HoldingProxy(upstream.hostname or "127.0.0.1", upstream.port or 5432)
    await proxy.start()
    tight = settings.model_copy(update={"ready_timeout_s": READY_TIMEOUT_S})
    urls = BackendUrls(settings.redis_url, through(proxy, settings.database_url))
    try:
        async with (
            open_resources(tight, urls) as resources,
            app_client(FACTORIES[Audience.PUBLIC](resources)) as client,
        ):
            assert (await client.get("/ready")).status_code == 200  # a pooled connection
            proxy.hold()
            for _ in range(2):  # the pooled connection, then a new one that never connects
                started = time.monotonic()
                response = await client.get("/ready")
                took = time.monotonic() - started
                assert response.status_code == 503
                assert response.json()["failing"] == ["database"]
                assert response.json()["checks"]["database"]["error"] == "timeout"
                # Generous (5x). Before, cancelling the probe left SQLAlchemy's shielded
                # connection close waiting on the dead socket, and /ready waited with it.
                assert took < 5 * READY_TIMEOUT_S, took
            proxy.release()
            await drain_abandoned()  # the abandoned probes end once packets flow again
    finally:
        proxy.release()
        await proxy.close()
