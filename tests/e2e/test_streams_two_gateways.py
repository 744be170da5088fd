"""Live streams across two real `gateway serve` processes sharing Redis and PostgreSQL:
a client of gateway B follows a job whose events gateway A produces."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from gateway.jobs.models import JobEvent
from tests.support.gateway_process import GatewayProcess, replica_env, start_gateway
from tests.support.jobs import PLATFORMS, JobsHarness, event_validator, jobs_harness
from tests.support.streams import Event, open_sse
from tests.support.work import lease, parcel_data, post_results, succeeded

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
async def h(settings: Settings) -> AsyncIterator[JobsHarness]:
    """In-process apps on the same backends: keys, tokens and reading Redis."""
    async with jobs_harness(settings) as harness:
        yield harness


@pytest.fixture
async def gateways(settings: Settings, tmp_path: Path) -> AsyncIterator[list[GatewayProcess]]:
    """Two gateways on the test's database and Redis prefix."""
    env = {**replica_env(settings), "JOB_PLATFORMS": json.dumps(PLATFORMS)}
    procs = [start_gateway(tmp_path, env) for _ in range(2)]
    try:
        for proc in procs:
            await asyncio.to_thread(proc.wait_ready)
        yield procs
    finally:
        codes = [await asyncio.to_thread(proc.stop) for proc in procs]
        assert codes == [0, 0], "\n".join(proc.output() for proc in procs)


def as_events(received: list[Event]) -> list[JobEvent]:
    return [JobEvent.model_validate(e.json()) for e in received]


async def test_a_client_of_one_gateway_sees_the_events_another_produces(
    h: JobsHarness, gateways: list[GatewayProcess]
) -> None:
    a, b = gateways
    key = await h.key()
    token = await h.worker_token()
    validate = event_validator()
    async with (
        httpx.AsyncClient(base_url=a.url("public", ""), timeout=30) as public_a,
        httpx.AsyncClient(base_url=a.url("parcel", ""), timeout=30) as parcel_a,
        httpx.AsyncClient(base_url=b.url("public", ""), timeout=30) as public_b,
    ):
        body = {
            "kind": "parcel_refresh",
            "items": [{"platform": "alpha", "parcel_id": p} for p in ("e-1", "e-2", "e-3")],
        }
        submitted = await public_a.post("/v1/jobs", json=body, headers={"X-API-Key": key})
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]
        url = f"/v1/jobs/{job_id}/events"
        async with (
            open_sse(public_b, url, headers={"X-API-Key": key}) as on_b,
            open_sse(public_a, url, headers={"X-API-Key": key}) as on_a,
        ):
            assert (on_a.response.status_code, on_b.response.status_code) == (200, 200)
            events_b, events_a = on_b.events(), on_a.events()
            snapshot_b, snapshot_a = await anext(events_b), await anext(events_a)
            assert snapshot_b.event == snapshot_a.event == "snapshot"
            # Every result is posted to gateway A, one at a time; B's client sees each.
            seen_b: list[Event] = []
            for _ in range(3):
                (task,) = await lease(parcel_a, token, limit=1)
                posted = await post_results(
                    parcel_a, token, [succeeded(task, parcel_data(task["key"]))]
                )
                assert posted.status_code == 200, posted.text
                seen_b.append(await anext(events_b))
                assert seen_b[-1].json()["data"]["progress"]["succeeded"] >= len(seen_b)
            seen_b += [e async for e in events_b]
            seen_a = [e async for e in events_a]
    published = await h.jobs.publisher.read(job_id, after=int(snapshot_b.id or 0))
    assert as_events(seen_b) == published
    assert seen_b[-1].event == "job.completed"
    for event in seen_b:
        validate(event.json())
    # The producing gateway's own client got the same sequence from its snapshot on.
    assert as_events(seen_a) == [e for e in published if e.seq > int(snapshot_a.id or 0)]


async def test_a_client_told_to_leave_by_a_stopping_gateway_resumes_on_the_other(
    h: JobsHarness, gateways: list[GatewayProcess]
) -> None:
    a, b = gateways
    key = await h.key()
    token = await h.worker_token()
    async with (
        httpx.AsyncClient(base_url=a.url("public", ""), timeout=30) as public_a,
        httpx.AsyncClient(base_url=b.url("public", ""), timeout=30) as public_b,
        httpx.AsyncClient(base_url=b.url("parcel", ""), timeout=30) as parcel_b,
    ):
        body = {
            "kind": "parcel_refresh",
            "items": [{"platform": "alpha", "parcel_id": p} for p in ("m-1", "m-2", "m-3")],
        }
        submitted = await public_b.post("/v1/jobs", json=body, headers={"X-API-Key": key})
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]
        url = f"/v1/jobs/{job_id}/events"

        async def scrape_one() -> None:
            (task,) = await lease(parcel_b, token, limit=1)
            posted = await post_results(
                parcel_b, token, [succeeded(task, parcel_data(task["key"]))]
            )
            assert posted.status_code == 200, posted.text

        async with open_sse(public_a, url, headers={"X-API-Key": key}) as on_a:
            events = on_a.events()
            assert (await anext(events)).event == "snapshot"
            await scrape_one()
            assert (await anext(events)).event == "job.progress"
            a.proc.send_signal(signal.SIGTERM)
            goodbye = [e async for e in events]
        assert [e.event for e in goodbye] == ["shutdown"]
        assert await asyncio.to_thread(a.proc.wait, 60) == 0
        last_id = on_a.last_id
        assert last_id is not None

        await scrape_one()  # while the client is away
        headers = {"X-API-Key": key, "Last-Event-ID": last_id}
        async with open_sse(public_b, url, headers=headers) as on_b:
            stream = on_b.events()
            resumed = [await anext(stream)]
            await scrape_one()
            resumed += [e async for e in stream]
    assert as_events(resumed) == await h.jobs.publisher.read(job_id, after=int(last_id))
    assert resumed[-1].event == "job.completed"
