"""The shared engine bounds every call: a partitioned PostgreSQL fails calls, never hangs."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from gateway.core.errors import DependencyUnavailable
from gateway.core.resources import BackendUrls, open_resources
from gateway.core.settings import Settings
from gateway.kit.outage import session_scope
from tests.support.holding_proxy import HoldingProxy
from tests.support.tcp_proxy import database_proxy

pytestmark = pytest.mark.integration

COMMAND_TIMEOUT_S = 1.0


async def test_a_commit_in_flight_fails_within_the_command_timeout(settings: Settings) -> None:
    assert settings.database_url is not None
    assert settings.redis_url is not None
    proxy, proxied = database_proxy(settings.database_url, HoldingProxy)
    await proxy.start()
    bounded = settings.model_copy(
        update={"database_command_timeout_s": COMMAND_TIMEOUT_S, "ready_timeout_s": 0.5}
    )
    urls = BackendUrls(settings.redis_url, proxied)

    async def commit_during_a_partition() -> None:
        async with session_scope(resources.sessionmaker, write=True) as session:
            await session.execute(text("SELECT 1"))
            proxy.hold()  # packets dropped from here on: the COMMIT gets no answer

    try:
        async with open_resources(bounded, urls) as resources:
            task = asyncio.ensure_future(commit_during_a_partition())
            # Generous: 5x the bound. Before asyncpg had a command timeout the COMMIT
            # waited for as long as the partition lasted.
            done, _ = await asyncio.wait({task}, timeout=5 * COMMAND_TIMEOUT_S + 5)
            proxy.release()
            if not done:
                await asyncio.wait({task})
                pytest.fail("the COMMIT outlived the command timeout by far")
            with pytest.raises(DependencyUnavailable):
                task.result()
    finally:
        proxy.release()
        await proxy.close()
