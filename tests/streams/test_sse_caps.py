"""Follower caps of SSE streams: per job (`SSE_MAX_PER_JOB`) and per caller
(`SSE_MAX_PER_PRINCIPAL`), counted in Redis so they hold across processes.

A stream over a cap is a 429 problem with `Retry-After`; closing a stream gives its place
back, which the next stream finds once the server noticed the client left.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.apps.public import create_public_app
from gateway.core.audience import Audience
from gateway.core.resources import BackendUrls, open_resources
from tests.support.jobs import JobsHarness
from tests.support.streams import SseStream, open_sse, served
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

PER_JOB = 2
PER_PRINCIPAL = 3


@pytest.fixture
def harness_overrides() -> dict[str, Any]:
    return {"sse_max_per_job": PER_JOB, "sse_max_per_principal": PER_PRINCIPAL}


@contextlib.asynccontextmanager
async def second_replica(h: JobsHarness) -> AsyncIterator[FastAPI]:
    """Another public app on the same Redis, PostgreSQL and key prefix, lifespan on: a
    second replica. It has resources of its own, as a replica does (two public apps on
    one `Resources` would register the port's metrics twice in one registry)."""
    settings = h.resources.settings
    assert settings.redis_url is not None
    assert settings.database_url is not None
    urls = BackendUrls(settings.redis_url, settings.database_url)
    async with open_resources(settings, urls) as resources:
        app = create_public_app(resources)
        async with app.router.lifespan_context(app):
            yield app


class Streams:
    """SSE streams held open until closed one by one (or all at the end)."""

    def __init__(self) -> None:
        self._open: list[tuple[SseStream, contextlib.AsyncExitStack]] = []

    async def open(self, client: httpx.AsyncClient, job_id: str, key: str) -> SseStream:
        """GET the job's stream; an accepted one is held open, a refused one read."""
        stack = contextlib.AsyncExitStack()
        sse = await stack.enter_async_context(
            open_sse(client, f"/v1/jobs/{job_id}/events", headers={"X-API-Key": key})
        )
        if sse.response.status_code != 200:
            await sse.response.aread()
            await stack.aclose()
            return sse
        self._open.append((sse, stack))
        return sse

    async def close(self, sse: SseStream) -> None:
        """Hang up one held stream (the client closes its connection)."""
        for i, (held, stack) in enumerate(self._open):
            if held is sse:
                del self._open[i]
                await stack.aclose()
                return
        raise AssertionError("not a held stream")

    async def aclose(self) -> None:
        """Hang up every held stream."""
        while self._open:
            await self.close(self._open[-1][0])


@pytest.fixture
async def streams() -> AsyncIterator[Streams]:
    held = Streams()
    try:
        yield held
    finally:
        await held.aclose()


def refusals(h: JobsHarness, reason: str) -> float:
    registry = h.resources.metrics.registry(Audience.PUBLIC)
    sample = registry.get_sample_value(
        "gateway_stream_refusals_total", {"kind": "sse", "reason": reason}
    )
    return sample or 0.0


def assert_refused(sse: SseStream, slug: str) -> None:
    """A 429 problem of type `slug`, with a Retry-After."""
    response = sse.response
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/" + slug)
    assert int(response.headers["Retry-After"]) > 0


async def accepted(streams: Streams, client: httpx.AsyncClient, job_id: str, key: str) -> SseStream:
    """Wait until a stream of `job_id` is accepted (a place was given back); it."""
    found: list[SseStream] = []

    async def opens() -> bool:
        sse = await streams.open(client, job_id, key)
        if sse.response.status_code == 200:
            found.append(sse)
            return True
        return False

    await wait_until(opens, what=f"a stream of {job_id} accepted")
    return found[0]


async def test_a_job_followed_by_sse_max_per_job_streams_refuses_the_next(
    h: JobsHarness, web: httpx.AsyncClient, streams: Streams
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["cap-1"])).json()
    held = [await streams.open(web, job["id"], key) for _ in range(PER_JOB)]
    assert [s.response.status_code for s in held] == [200] * PER_JOB
    refused_before = refusals(h, "too_many_followers")
    over = await streams.open(web, job["id"], key)
    assert_refused(over, "too-many-followers")
    assert refusals(h, "too_many_followers") > refused_before
    # Another job of the same caller is not affected.
    other = (await h.submit(key, ["cap-2"])).json()
    assert (await streams.open(web, other["id"], key)).response.status_code == 200

    await streams.close(held[0])
    again = await accepted(streams, web, job["id"], key)
    assert (await anext(again.events())).event == "snapshot"


async def test_a_caller_holding_sse_max_per_principal_streams_is_refused_the_next(
    h: JobsHarness, web: httpx.AsyncClient, streams: Streams
) -> None:
    key = await h.key()
    jobs = [(await h.submit(key, [f"p-{i}"])).json()["id"] for i in range(PER_PRINCIPAL + 1)]
    held = [await streams.open(web, job_id, key) for job_id in jobs[:PER_PRINCIPAL]]
    assert [s.response.status_code for s in held] == [200] * PER_PRINCIPAL
    refused_before = refusals(h, "too_many_streams")
    over = await streams.open(web, jobs[-1], key)
    assert_refused(over, "too-many-streams")
    assert refusals(h, "too_many_streams") > refused_before
    # The cap is the caller's: another caller opens streams of its own jobs.
    bobs_key = await h.key(user="bob")
    bobs_job = (await h.submit(bobs_key, ["b-1"])).json()
    assert (await streams.open(web, bobs_job["id"], bobs_key)).response.status_code == 200

    await streams.close(held[1])
    again = await accepted(streams, web, jobs[-1], key)
    assert (await anext(again.events())).event == "snapshot"


async def test_the_caps_hold_across_two_replicas_on_one_redis(
    h: JobsHarness, web: httpx.AsyncClient, streams: Streams
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["x-1"])).json()
    async with (
        second_replica(h) as app_b,
        served(app_b) as base_b,
        httpx.AsyncClient(base_url=base_b, timeout=30) as web_b,
    ):
        on_a = await streams.open(web, job["id"], key)
        on_b = await streams.open(web_b, job["id"], key)
        assert (on_a.response.status_code, on_b.response.status_code) == (200, 200)
        assert_refused(await streams.open(web, job["id"], key), "too-many-followers")
        assert_refused(await streams.open(web_b, job["id"], key), "too-many-followers")

        # The caller's cap too: one more job's stream fills it, across both apps.
        other = (await h.submit(key, ["x-2"])).json()
        assert (await streams.open(web_b, other["id"], key)).response.status_code == 200
        third = (await h.submit(key, ["x-3"])).json()
        assert_refused(await streams.open(web, third["id"], key), "too-many-streams")

        # A place freed on B is taken on A.
        await streams.close(on_b)
        again = await accepted(streams, web, job["id"], key)
        assert (await anext(again.events())).event == "snapshot"
        await streams.aclose()
