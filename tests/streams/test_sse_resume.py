"""Resuming an SSE stream: `Last-Event-ID` (or `?last_event_id=`) after a disconnect.

A client that reconnects with the id of the last event it saw gets exactly the events it
missed, then the live ones; when Redis no longer holds them (the job's stream was
trimmed or expired) it gets one `resync` frame with the job's full state instead. An id
that is not one of ours is a 422 problem.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.core.audience import Audience
from gateway.jobs.models import JobEvent
from tests.support.jobs import JobsHarness
from tests.support.streams import Event, open_sse

pytestmark = pytest.mark.integration


def sample(h: JobsHarness, name: str) -> float:
    """One `kind="sse"` series of the harness's public port."""
    registry = h.resources.metrics.registry(Audience.PUBLIC)
    return registry.get_sample_value(name, {"kind": "sse"}) or 0.0


def assert_same_events(received: list[Event], published: list[JobEvent]) -> None:
    """The received frames are exactly the published events: same ids, types, bodies."""
    assert [int(e.id or 0) for e in received] == [p.seq for p in published]
    assert [e.event for e in received] == [p.type for p in published]
    assert [JobEvent.model_validate(e.json()) for e in received] == published


def resume_at(last_id: str, how: str, key: str) -> tuple[str, dict[str, str]]:
    """The query suffix and headers that resume after `last_id`, by header or query."""
    headers = {"X-API-Key": key}
    if how == "header":
        return "", {**headers, "Last-Event-ID": last_id}
    return f"?last_event_id={last_id}", headers


async def job_with_events(h: JobsHarness, key: str, items: int, done: int) -> dict[str, Any]:
    """A job of `items` parcels, `done` of them already scraped."""
    job: dict[str, Any] = (await h.submit(key, [f"r-{i}" for i in range(items)])).json()
    token = await h.worker_token()
    for _ in range(done):
        assert await h.scrape(token, limit=1)
    return job


@pytest.mark.parametrize("how", ["header", "query"])
async def test_a_reconnect_gets_exactly_the_missed_events_then_the_live_ones(
    h: JobsHarness, web: httpx.AsyncClient, how: str
) -> None:
    key = await h.key()
    job = await job_with_events(h, key, items=5, done=0)
    token = await h.worker_token()
    url = f"/v1/jobs/{job['id']}/events"
    async with open_sse(web, url, headers={"X-API-Key": key}) as sse:
        events = sse.events()
        assert (await anext(events)).event == "snapshot"
        assert await h.scrape(token, limit=1)
        seen = await anext(events)
        assert seen.event == "job.progress"
    # The client hung up (closed its connection); the job goes on without it.
    assert sse.last_id == seen.id
    assert seen.id is not None
    for _ in range(2):
        assert await h.scrape(token, limit=1)
    missed = await h.jobs.publisher.read(job["id"], after=int(seen.id))
    assert missed, "events happened while the client was away"
    resumes_before = sample(h, "gateway_stream_resumes_total")

    suffix, headers = resume_at(seen.id, how, key)
    async with open_sse(web, url + suffix, headers=headers) as again:
        assert again.response.status_code == 200
        stream = again.events()
        replayed = [await anext(stream) for _ in missed]
        assert_same_events(replayed, missed)
        while await h.scrape(token, limit=1):
            pass
        live = [e async for e in stream]
    assert live[-1].event == "job.completed"
    everything = await h.jobs.publisher.read(job["id"], after=int(seen.id))
    assert_same_events(replayed + live, everything)  # no gap, no duplicate
    assert sample(h, "gateway_stream_resumes_total") > resumes_before


async def test_resuming_at_the_last_event_of_a_running_job_sends_only_what_follows(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job = await job_with_events(h, key, items=2, done=1)
    (last,) = (await h.jobs.publisher.read(job["id"]))[-1:]
    url = f"/v1/jobs/{job['id']}/events"
    async with open_sse(
        web, url, headers={"X-API-Key": key, "Last-Event-ID": str(last.seq)}
    ) as sse:
        assert await h.scrape(await h.worker_token())
        received = [e async for e in sse.events()]
    assert_same_events(received, await h.jobs.publisher.read(job["id"], after=last.seq))
    assert received[-1].event == "job.completed"


async def test_resuming_after_the_terminal_event_is_a_204_that_stops_eventsource(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    # EventSource reconnects when a stream ends, with the terminal event's id; only a
    # 204 makes it stop. It used to get a stream that stayed open with nothing to send.
    key = await h.key()
    job = await job_with_events(h, key, items=1, done=1)
    await h.wait_state(key, job["id"], "completed")
    (last,) = (await h.jobs.publisher.read(job["id"]))[-1:]
    assert last.type == "job.completed"
    url = f"/v1/jobs/{job['id']}/events"
    answer = await web.get(url, headers={"X-API-Key": key, "Last-Event-ID": str(last.seq)})
    assert answer.status_code == 204
    assert answer.content == b""
    # Its place was given back: the job's cap is not held by a stream that never ran.
    caps = h.public_app.state.planes["streams"].caps
    assert await h.resources.redis.zcard(caps.job_place(job["id"]).key) == 0


@pytest.mark.parametrize("loss", ["trimmed", "deleted"])
async def test_events_gone_from_redis_give_a_resync_with_the_full_state(
    h: JobsHarness, web: httpx.AsyncClient, loss: str
) -> None:
    key = await h.key()
    job = await job_with_events(h, key, items=3, done=2)
    stream = h.jobs.publisher.keys.stream(job["id"])
    redis = h.resources.redis
    if loss == "trimmed":
        await redis.xtrim(stream, maxlen=1, approximate=False)
        assert len(await h.jobs.publisher.read(job["id"])) == 1
    else:
        await redis.delete(stream)
    resyncs_before = sample(h, "gateway_stream_resyncs_total")
    resumes_before = sample(h, "gateway_stream_resumes_total")
    url = f"/v1/jobs/{job['id']}/events"
    async with open_sse(web, url, headers={"X-API-Key": key, "Last-Event-ID": "1"}) as sse:
        events = sse.events()
        resync = await anext(events)
        assert resync.event == "resync"
        assert resync.json() == await h.job(key, job["id"])
        seq = await h.count("SELECT event_seq FROM jobs WHERE id = :id", id=job["id"])
        assert int(resync.id or 0) == seq
        assert await h.scrape(await h.worker_token())
        live = [e async for e in events]
    assert_same_events(live, await h.jobs.publisher.read(job["id"], after=seq))
    assert live[-1].event == "job.completed"
    assert sample(h, "gateway_stream_resyncs_total") > resyncs_before
    assert sample(h, "gateway_stream_resumes_total") > resumes_before


async def test_an_id_above_the_jobs_last_event_gives_a_resync(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job = await job_with_events(h, key, items=2, done=1)
    url = f"/v1/jobs/{job['id']}/events"
    async with open_sse(web, url, headers={"X-API-Key": key, "Last-Event-ID": "999"}) as sse:
        first = await anext(sse.events())
    assert first.event == "resync"
    assert first.json() == await h.job(key, job["id"])
    assert int(first.id or 0) == (await h.jobs.publisher.read(job["id"]))[-1].seq


@pytest.mark.parametrize("bogus", ["abc", "-1", "1" * 19, "1.5", "0x10", "١٢"])
async def test_an_event_id_that_is_not_ours_is_a_422_problem(
    h: JobsHarness, web: httpx.AsyncClient, bogus: str
) -> None:
    key = await h.key()
    job = await job_with_events(h, key, items=1, done=0)
    url = f"/v1/jobs/{job['id']}/events"
    # Sent as UTF-8 bytes: a header is bytes on the wire, whatever a client allows.
    headers = {b"X-API-Key": key.encode(), b"Last-Event-ID": bogus.encode()}
    answer = await web.get(url, headers=headers)
    problem = _problem(answer, 422)
    assert problem["errors"][0]["loc"] == ["header", "Last-Event-ID"]
    answer = await web.get(url, params={"last_event_id": bogus}, headers={"X-API-Key": key})
    problem = _problem(answer, 422)
    assert problem["errors"][0]["loc"] == ["query", "last_event_id"]


async def test_a_very_long_query_event_id_is_a_422_problem(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job = await job_with_events(h, key, items=1, done=0)
    answer = await web.get(
        f"/v1/jobs/{job['id']}/events",
        params={"last_event_id": "9" * 40},
        headers={"X-API-Key": key},
    )
    problem = _problem(answer, 422)
    assert problem["errors"][0]["loc"] == ["query", "last_event_id"]


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def test_a_client_reconnecting_again_and_again_sees_every_event_once(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    # Whatever the interleaving of the job's progress with the client's reconnects
    # (replay and live feed overlapping), the events seen add up to the job's stream.
    key = await h.key()
    job = await job_with_events(h, key, items=12, done=0)
    token = await h.worker_token()
    url = f"/v1/jobs/{job['id']}/events"

    async def work() -> None:
        while await h.scrape(token, limit=1):
            pass

    worker = asyncio.create_task(work())
    seen: list[Event] = []
    start: int | None = None
    last: str | None = None
    finished = False
    try:
        while not finished:
            headers = {"X-API-Key": key, **({"Last-Event-ID": last} if last else {})}
            async with open_sse(web, url, headers=headers) as sse:
                if sse.response.status_code == 204:  # resumed at the terminal event
                    break
                assert sse.response.status_code == 200
                got = await sse.take(2)  # then hang up, mid-stream
            for event in got:
                if event.event == "snapshot":
                    start = int(event.id or 0)
                else:
                    assert event.event.startswith("job."), event.event
                    seen.append(event)
                finished = finished or event.event == "job.completed"
            last = sse.last_id
    finally:
        await worker
    assert start is not None
    assert_same_events(seen, await h.jobs.publisher.read(job["id"], after=start))
