"""What a long-lived stream does to the port's request metrics."""

from __future__ import annotations

import time
from typing import Any

import httpx

from gateway.core.settings import Settings
from tests.support.jobs import jobs_harness
from tests.support.streams import open_sse, served

ROUTE = "/v1/jobs/{job_id}/events"


def duration_sum(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith("http_request_duration_seconds_sum{") and f'handler="{ROUTE}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no duration series for {ROUTE}")


async def test_a_stream_counts_its_time_to_first_byte_not_its_stay(settings: Settings) -> None:
    async with jobs_harness(settings, sse_heartbeat_s=0.2) as h:
        key = await h.key()
        job = (await h.submit(key, ["m-1"])).json()
        async with served(h.public_app) as base, httpx.AsyncClient(base_url=base) as web:
            opened = time.perf_counter()
            async with open_sse(
                web, f"/v1/jobs/{job['id']}/events", headers={"X-API-Key": key}
            ) as sse:
                events = sse.events()
                assert (await anext(events)).event == "snapshot"
                # Stay until the server has sent a heartbeat after the first byte.
                assert await sse.comment() == "keep-alive"
            stayed = time.perf_counter() - opened
        metrics: Any = (await h.public.get("/metrics")).text
    # The server's first byte came before the heartbeat the client waited for, so the
    # recorded latency is below the stay (the whole stay would be at least as long).
    assert duration_sum(metrics) < stayed
    assert 'handler="/v1/jobs/{job_id}/events",method="GET",status="200"' in metrics
