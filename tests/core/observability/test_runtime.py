"""Process metrics: pool usage read at scrape time, loop lag, background dependency probe."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

import gateway
from gateway.core.audience import Audience
from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import Settings
from gateway.process.monitor import ProcessMonitor
from tests.conftest import ClientFactory
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of one metric in an exposition, keyed by its sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of `name` with exactly these labels."""
    key = tuple(sorted({"audience": "public", **labels}.items()))
    found = samples(text, name)
    assert key in found, f"{name}{labels} not in {sorted(found)}"
    return found[key]


def monitor(resources: Resources, *, probe_timeout_s: float = 1.0) -> ProcessMonitor:
    return ProcessMonitor(
        resources.metrics.runtime,
        redis=resources.redis,
        engine=resources.engine,
        probe_timeout_s=probe_timeout_s,
        probe_interval_s=0.2,
        lag_interval_s=0.05,
    )


def render(resources: Resources) -> str:
    return resources.metrics.render(Audience.PUBLIC).decode()


async def test_pool_gauges_follow_connections_held_right_now(resources: Resources) -> None:
    await resources.redis.ping()
    async with resources.engine.connect():
        held = render(resources)
    released = render(resources)

    assert value(held, "gateway_db_pool_connections", state="checked_out") == 1
    assert value(released, "gateway_db_pool_connections", state="checked_out") == 0
    assert value(released, "gateway_db_pool_connections", state="idle") == 1
    assert value(released, "gateway_db_pool_connections", state="overflow") == 0

    pool = resources.redis.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    try:
        busy = render(resources)
    finally:
        await pool.release(connection)
    assert value(busy, "gateway_redis_pool_connections", state="in_use") == 1
    assert value(render(resources), "gateway_redis_pool_connections", state="in_use") == 0
    assert value(render(resources), "gateway_redis_pool_connections", state="idle") >= 1


async def test_monitor_publishes_dependencies_up_and_loop_lag(resources: Resources) -> None:
    async with monitor(resources) as running:
        text = render(resources)
        assert value(text, "gateway_dependency_up", dependency="redis") == 1
        assert value(text, "gateway_dependency_up", dependency="database") == 1
        # Present; its value is whatever lag this machine has now (not asserted).
        assert value(text, "gateway_event_loop_lag_seconds") >= 0

        await asyncio.sleep(0)  # the sampler task has run: it is inside its 50 ms sleep
        # Block the loop on purpose: the sampler's next wake-up is at least this late.
        time.sleep(0.3)  # noqa: ASYNC251
        await wait_until(lambda: running.sampler.worst() >= 0.2, what="the lag being sampled")
        assert value(render(resources), "gateway_event_loop_lag_seconds") >= 0.2


async def test_only_one_monitor_per_process(resources: Resources) -> None:
    async with monitor(resources):
        with pytest.raises(RuntimeError, match="already running"):
            await monitor(resources).__aenter__()
    # Stopping releases the slot, so the runner can start one again after a restart.
    async with monitor(resources):
        pass


@contextlib.asynccontextmanager
async def hanging_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers (a hung backend)."""
    connections: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_metrics_answer_while_a_backend_hangs(
    resources: Resources, client_for: ClientFactory
) -> None:
    """A hung Redis turns its gauge to 0 after the probe timeout; /metrics never waits."""
    from redis.asyncio import Redis

    async with hanging_server() as port:
        hung = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=30)

        def prober(timeout_s: float) -> ProcessMonitor:
            return ProcessMonitor(
                resources.metrics.runtime,
                redis=hung,
                engine=resources.engine,
                probe_timeout_s=timeout_s,
            )

        try:
            # Stuck for a minute: no busy machine lets it time out before /metrics answers
            # (with the 0.5 s timeout below it sometimes had).
            probing = asyncio.create_task(prober(60).probe_once())
            async with client_for(Audience.PUBLIC) as client:
                response = await client.get("/metrics")
                # /metrics answered while the probe is still stuck on the hung backend.
                assert not probing.done()
                assert response.status_code == 200
            probing.cancel()
            outcome = await asyncio.wait_for(prober(0.5).probe_once(), timeout=30)
        finally:
            await hung.aclose()
    assert outcome == {"redis": False, "database": True}
    text = render(resources)
    assert value(text, "gateway_dependency_up", dependency="redis") == 0
    assert value(text, "gateway_dependency_up", dependency="database") == 1


async def test_build_commit_setting_reaches_build_info(settings: Settings) -> None:
    custom = settings.model_copy(update={"build_commit": "0a1b2c3"})
    assert custom.redis_url
    assert custom.database_url
    async with open_resources(custom, BackendUrls(custom.redis_url, custom.database_url)) as res:
        text = res.metrics.render(Audience.PUBLIC).decode()
    assert value(text, "gateway_build_info", version=gateway.__version__, commit="0a1b2c3") == 1


def test_build_commit_rejects_free_text() -> None:
    with pytest.raises(ValidationError, match="build_commit"):
        Settings(_env_file=None, build_commit="abc; rm -rf /")
