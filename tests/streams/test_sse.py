"""Server-Sent Events of a job on a real HTTP server: snapshot, live events, resume."""

from __future__ import annotations

import httpx

from gateway.core.settings import Settings
from tests.support.jobs import JobsHarness, event_validator, jobs_harness
from tests.support.streams import open_sse, served


async def test_a_stream_sends_the_state_then_every_event_then_ends(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["s-1", "s-2"])).json()
    token = await h.worker_token()
    validate = event_validator()
    async with open_sse(web, f"/v1/jobs/{job['id']}/events", headers={"X-API-Key": key}) as sse:
        assert sse.response.status_code == 200
        assert sse.response.headers["content-type"].startswith("text/event-stream")
        events = sse.events()
        first = await anext(events)
        assert first.event == "snapshot"
        assert first.json()["state"] == "queued"
        assert await h.scrape(token, limit=1)
        assert await h.scrape(token, limit=1)
        rest = [e async for e in events]
    assert sse.retry == [h.resources.settings.sse_retry_ms]
    ids = [int(first.id or 0)] + [int(e.id or 0) for e in rest]
    assert ids == sorted(set(ids)), "ids strictly increase"
    assert rest[-1].event == "job.completed"
    for event in rest:
        validate(event.json())
        assert event.json()["seq"] == int(event.id or 0)


async def test_a_resume_after_the_terminal_event_is_a_204(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["s-9"])).json()
    assert await h.scrape(await h.worker_token())
    await h.wait_state(key, job["id"], "completed")
    url = f"/v1/jobs/{job['id']}/events"
    async with open_sse(web, url, headers={"X-API-Key": key}) as sse:
        events = [e async for e in sse.events()]
    assert [e.event for e in events] == ["snapshot"]
    assert events[0].json()["state"] == "completed"
    # The client saw everything: a resume from the last id has nothing to send, and a
    # 204 is what makes EventSource stop reconnecting.
    headers = {"X-API-Key": key, "Last-Event-ID": events[0].id or ""}
    again = await web.get(url, headers=headers)
    assert again.status_code == 204
    assert again.content == b""


async def test_the_fastapi_route_serves_the_stream_with_fastpath_off(settings: Settings) -> None:
    # FASTPATH=on answers streams in front of FastAPI (stream_front.py); off, the route
    # does, through the same `open_job_stream`.
    async with jobs_harness(settings, fastpath=False) as h:
        key = await h.key()
        job = (await h.submit(key, ["s-off"])).json()
        async with (
            served(h.public_app) as base,
            httpx.AsyncClient(base_url=base, timeout=30) as web,
            open_sse(web, f"/v1/jobs/{job['id']}/events", headers={"X-API-Key": key}) as sse,
        ):
            assert sse.response.status_code == 200
            events = sse.events()
            assert (await anext(events)).event == "snapshot"
            assert await h.scrape(await h.worker_token())
            assert [e.event async for e in events][-1] == "job.completed"
