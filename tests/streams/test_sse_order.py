"""What one SSE stream of a job carries, in what order, and when it ends.

Each test runs the harness's public app on a real uvicorn server and compares what the
client received with what the job wrote: its row in PostgreSQL (the snapshot's id is the
job's last event sequence) and its event stream in Redis (`publisher.read`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from gateway.core.audience import Audience
from gateway.jobs.events import make_event
from gateway.jobs.models import JobEvent
from tests.support.jobs import JobsHarness, event_validator
from tests.support.streams import Event, SseStream, open_sse
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def harness_overrides() -> dict[str, Any]:
    return {"sse_heartbeat_s": 0.2}


def sent_total(h: JobsHarness) -> float:
    """`gateway_stream_events_sent_total{kind="sse"}` of the harness's public port."""
    registry = h.resources.metrics.registry(Audience.PUBLIC)
    return registry.get_sample_value("gateway_stream_events_sent_total", {"kind": "sse"}) or 0.0


async def last_seq(h: JobsHarness, job_id: str) -> int:
    """The sequence of the job's last committed event, from PostgreSQL."""
    return await h.count("SELECT event_seq FROM jobs WHERE id = :id", id=job_id)


def assert_same_events(received: list[Event], published: list[JobEvent]) -> None:
    """The received frames are exactly the published events: same ids, types, bodies."""
    assert [int(e.id or 0) for e in received] == [p.seq for p in published]
    assert [e.event for e in received] == [p.type for p in published]
    assert [JobEvent.model_validate(e.json()) for e in received] == published


def stream_url(job_id: str) -> str:
    return f"/v1/jobs/{job_id}/events"


async def test_snapshot_then_every_event_in_order_then_the_end(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["o-1", "o-2", "o-3"])).json()
    token = await h.worker_token()
    validate = event_validator()
    sent_before = sent_total(h)
    async with open_sse(web, stream_url(job["id"]), headers={"X-API-Key": key}) as sse:
        assert sse.response.status_code == 200
        assert sse.response.headers["cache-control"] == "no-store"
        events = sse.events()
        snapshot = await anext(events)
        assert snapshot.event == "snapshot"
        assert int(snapshot.id or 0) == await last_seq(h, job["id"])
        assert snapshot.json() == await h.job(key, job["id"])
        for _ in range(3):
            assert await h.scrape(token, limit=1)
        rest = [e async for e in events]  # the server ends the stream by itself
    published = await h.jobs.publisher.read(job["id"], after=int(snapshot.id or 0))
    assert_same_events(rest, published)
    assert rest[-1].event == "job.completed"
    assert [e.event for e in rest].count("job.completed") == 1
    for event in rest:
        validate(event.json())
    assert int(rest[-1].id or 0) == await last_seq(h, job["id"])
    assert sent_total(h) > sent_before


async def test_a_finished_job_gives_its_snapshot_and_the_stream_ends(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["f-1"])).json()
    assert await h.scrape(await h.worker_token())
    finished = await h.wait_state(key, job["id"], "completed")
    async with open_sse(web, stream_url(job["id"]), headers={"X-API-Key": key}) as sse:
        received = [e async for e in sse.events()]
    assert [e.event for e in received] == ["snapshot"]
    assert received[0].json() == finished
    assert int(received[0].id or 0) == await last_seq(h, job["id"])


async def test_a_cancelled_job_ends_its_stream_with_the_cancel_event(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["c-1", "c-2"])).json()
    async with open_sse(web, stream_url(job["id"]), headers={"X-API-Key": key}) as sse:
        events = sse.events()
        snapshot = await anext(events)
        cancelled = await h.public.post(f"/v1/jobs/{job['id']}/cancel", headers={"X-API-Key": key})
        assert cancelled.status_code == 200, cancelled.text
        rest = [e async for e in events]
    assert rest, "the cancel reached the stream"
    assert rest[-1].event == "job.cancelled"
    assert rest[-1].json()["data"]["state"] == "cancelled"
    published = await h.jobs.publisher.read(job["id"], after=int(snapshot.id or 0))
    assert_same_events(rest, published)


@pytest.mark.parametrize(
    ("failing", "terminal"),
    [({"t-1"}, "job.partially_failed"), ({"t-1", "t-2"}, "job.failed")],
)
async def test_a_job_that_fails_ends_its_stream_with_its_terminal_event(
    h: JobsHarness, web: httpx.AsyncClient, failing: set[str], terminal: str
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["t-1", "t-2"])).json()
    token = await h.worker_token()
    async with open_sse(web, stream_url(job["id"]), headers={"X-API-Key": key}) as sse:
        events = sse.events()
        snapshot = await anext(events)
        assert await h.scrape(token, fail=lambda task: task["key"] in failing)
        rest = [e async for e in events]
    assert rest[-1].event == terminal
    assert rest[-1].json()["data"]["state"] == terminal.removeprefix("job.")
    assert_same_events(rest, await h.jobs.publisher.read(job["id"], after=int(snapshot.id or 0)))


async def test_a_superseded_progress_step_leaves_a_gap_and_nothing_else(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    # A job.progress snapshot that lost the publish race to a newer one is never
    # published: the stream skips its seq and goes on.
    key = await h.key()
    job = (await h.submit(key, ["g-1"])).json()
    (queued,) = await h.jobs.publisher.read(job["id"])
    data = {"state": "queued", "progress": queued.data["progress"]}
    async with open_sse(web, stream_url(job["id"]), headers={"X-API-Key": key}) as sse:
        events = sse.events()
        snapshot = await anext(events)
        seq = int(snapshot.id or 0)
        for step in (seq + 2, seq + 3):
            event = make_event(
                job["id"], queued.owner, step, "job.progress", datetime.now(UTC), data
            )
            assert await h.jobs.publisher.publish([event]) == 1
        received = [await anext(events), await anext(events)]
    assert [int(e.id or 0) for e in received] == [seq + 2, seq + 3]
    assert_same_events(received, await h.jobs.publisher.read(job["id"], after=seq))


async def test_an_idle_stream_gets_keep_alive_comments(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["k-1"])).json()
    async with open_sse(web, stream_url(job["id"]), headers={"X-API-Key": key}) as sse:
        reader = asyncio.create_task(_read_all(sse))
        try:
            await wait_until(lambda: "keep-alive" in sse.comments, what="a keep-alive comment")
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    # A comment is not an event: nothing but the snapshot was dispatched.
    assert sse.last_id == str(await last_seq(h, job["id"]))


async def _read_all(sse: SseStream) -> list[Event]:
    return [e async for e in sse.events()]
