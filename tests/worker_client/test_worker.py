"""The worker client against the real parcel app (in-process, real Redis/PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.proxy_pool.inventory import add_proxies
from gateway.proxy_pool.service import ProxyPool
from taxlien_worker import Task, TaskContext, TaskFailed, Worker, WorkerClient
from tests.conftest import FACTORIES, app_client
from tests.support.work import make_token, parcel_data, work_app

BASE = "http://gateway.test"
DEADLINE_S = 30.0


async def _count(resources: Resources, sql: str) -> int:
    async with resources.engine.connect() as conn:
        return int((await conn.execute(sa.text(sql))).scalar_one())


async def _enqueue(client: httpx.AsyncClient, token: str, keys: list[str]) -> None:
    tasks = [{"platform": "alpha", "key": k, "payload": {"n": i}} for i, k in enumerate(keys)]
    response = await client.post(
        "/internal/tasks", json={"tasks": tasks}, headers={"X-Worker-Token": token}
    )
    assert response.status_code == 200, response.text


async def _scrape(task: Task, ctx: TaskContext) -> dict[str, Any]:
    return parcel_data(task.key, platform=task.platform)


async def _run_until(
    worker: Worker, done: Callable[[], bool], *, deadline_s: float = DEADLINE_S
) -> None:
    """Run the worker until `done()` holds (bounded in time), then stop it cleanly."""
    stop = asyncio.Event()

    async def watch() -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while not done() and loop.time() < end:  # noqa: ASYNC110 - a plain predicate, bounded
            await asyncio.sleep(0.05)
        stop.set()

    watcher = asyncio.create_task(watch())
    await worker.run(stop)
    await watcher


@contextlib.asynccontextmanager
async def _parcel_app(resources: Resources) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = FACTORIES[Audience.PARCEL](resources)
    async with app_client(app) as client:
        yield app, client


async def test_every_task_is_completed_exactly_once(resources: Resources) -> None:
    producer = await make_token(resources, "parcel", "producer")
    async with _parcel_app(resources) as (_, http):
        await _enqueue(http, producer, [f"p-{i}" for i in range(40)])
        client = WorkerClient(
            BASE, await make_token(resources, "parcel", "worker"), "w-1", http=http
        )
        worker = Worker(
            client, ["alpha"], _scrape, concurrency=8, lease_limit=5, wait_s=1, result_batch=7
        )
        await _run_until(worker, lambda: worker.stats.outcomes["accepted"] >= 40)
    assert worker.stats.outcomes == {"accepted": 40}
    assert worker.stats.unacknowledged == []
    assert await _count(resources, "SELECT count(*) FROM parcel_history") == 40
    assert await _count(resources, "SELECT count(DISTINCT parcel_id) FROM parcels") == 40


class _FlakyResults(httpx.AsyncBaseTransport):
    """Fails `/internal/results` posts: first unreachable, then a 503, then the answer
    of a post the gateway did commit is lost on the way back."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.script = ["connect", "503", "lost"]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/internal/results" and self.script:
            step = self.script.pop(0)
            if step == "connect":
                raise httpx.ConnectError("connection refused", request=request)
            if step == "503":
                return httpx.Response(
                    503, headers={"Retry-After": "0"}, json={"status": 503}, request=request
                )
            response = await self.inner.handle_async_request(request)
            await response.aread()
            raise httpx.ReadError("connection reset by peer", request=request)
        return await self.inner.handle_async_request(request)


async def test_results_survive_outages_and_lost_answers(resources: Resources) -> None:
    producer = await make_token(resources, "parcel", "producer")
    token = await make_token(resources, "parcel", "worker")
    app = FACTORIES[Audience.PARCEL](resources)
    async with app.router.lifespan_context(app):
        flaky = _FlakyResults(httpx.ASGITransport(app=app))
        async with httpx.AsyncClient(transport=flaky, base_url=BASE) as http:
            await _enqueue(http, producer, [f"p-{i}" for i in range(10)])
            worker = Worker(
                WorkerClient(BASE, token, "w-1", http=http),
                ["alpha"],
                _scrape,
                concurrency=10,
                lease_limit=10,
                wait_s=1,
                result_batch=10,
                result_retry_base_s=0.01,
            )
            acked = worker.stats.outcomes
            await _run_until(worker, lambda: acked["accepted"] + acked["duplicate"] >= 10)
    assert flaky.script == []  # every failure mode was exercised
    # The lost answer's batch was committed; its resend came back as duplicates.
    assert worker.stats.outcomes["duplicate"] > 0
    assert worker.stats.outcomes["accepted"] + worker.stats.outcomes["duplicate"] == 10
    assert worker.results.retries >= 2
    assert await _count(resources, "SELECT count(*) FROM parcel_history") == 10


async def test_failures_are_reported_and_retried_by_the_gateway(settings: Settings) -> None:
    attempts: dict[str, int] = {}

    async def flaky_scrape(task: Task, ctx: TaskContext) -> dict[str, Any]:
        attempts[task.key] = task.attempt
        if task.key == "broken":
            raise TaskFailed("parser cannot read this page", retryable=False)
        if task.attempt == 1:
            raise RuntimeError("county site timed out")
        return parcel_data(task.key)

    async with work_app(settings, retry_backoff_base_s=0, retry_backoff_cap_s=0) as (res, http):
        await _enqueue(http, await make_token(res, "parcel", "producer"), ["a", "b", "broken"])
        worker = Worker(
            WorkerClient(BASE, await make_token(res, "parcel", "worker"), "w", http=http),
            ["alpha"],
            flaky_scrape,
            wait_s=0.5,
            result_delay_s=0.01,
        )
        done = worker.stats.outcomes
        await _run_until(worker, lambda: done["accepted"] >= 5)
        history = await _count(res, "SELECT count(*) FROM parcel_history")
    assert attempts == {"a": 2, "b": 2, "broken": 1}
    assert done["accepted"] == 5  # 2 failures requeued, 2 successes, 1 dead-lettered
    assert history == 2


async def test_lost_lease_cancels_its_work_and_posts_nothing(settings: Settings) -> None:
    started = asyncio.Event()

    async def stuck(task: Task, ctx: TaskContext) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()  # never finishes on its own
        raise AssertionError("unreachable")

    async with work_app(settings, lease_timeout_s=0.3, reaper_interval_s=0.1) as (res, http):
        await _enqueue(http, await make_token(res, "parcel", "producer"), ["p-1"])
        worker = Worker(
            WorkerClient(BASE, await make_token(res, "parcel", "worker"), "w", http=http),
            ["alpha"],
            stuck,
            wait_s=0.2,
            heartbeat_interval_s=0.8,  # slower than the lease: the reaper takes it first
        )
        await _run_until(worker, lambda: worker.stats.lost >= 1)
        history = await _count(res, "SELECT count(*) FROM parcel_history")
    assert started.is_set()
    assert worker.stats.lost == 1
    assert worker.stats.cancelled >= 1
    assert sum(worker.stats.outcomes.values()) == 0
    assert history == 0


async def _set_command(app: FastAPI, command: str) -> None:
    await app.state.planes["work"].registry.set_command(command, None)


async def test_quiet_pauses_leasing_and_terminate_stops_the_worker(resources: Resources) -> None:
    release = asyncio.Event()
    handled: list[str] = []

    async def slow(task: Task, ctx: TaskContext) -> dict[str, Any]:
        handled.append(task.key)
        await release.wait()
        return parcel_data(task.key)

    producer = await make_token(resources, "parcel", "producer")
    async with _parcel_app(resources) as (app, http):
        worker = Worker(
            WorkerClient(BASE, await make_token(resources, "parcel", "worker"), "w", http=http),
            ["alpha"],
            slow,
            wait_s=0.2,
            heartbeat_interval_s=0.1,
        )
        running = asyncio.create_task(worker.run())
        await _wait(lambda: worker.command == "run" and worker.stats.leased == 0)
        await _set_command(app, "quiet")
        await _wait(lambda: worker.command == "quiet")
        beats = 0

        async def count_beats(request: httpx.Request) -> None:
            nonlocal beats
            beats += request.url.path == "/internal/heartbeat"

        http.event_hooks = {
            **http.event_hooks,
            "request": [*http.event_hooks["request"], count_beats],
        }
        await _enqueue(http, producer, ["p-1", "p-2"])
        # Several rounds of the worker's loop, counted rather than slept for.
        await _wait(lambda: beats >= 3)
        assert worker.stats.leased == 0  # quiet: nothing new is taken

        await _set_command(app, "run")
        await _wait(lambda: len(handled) == 2)
        await _set_command(app, "terminate")
        stats = await asyncio.wait_for(running, DEADLINE_S)
    assert stats.cancelled == 2  # terminate cancels in-flight work
    assert sum(stats.outcomes.values()) == 0


async def _wait(condition: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE_S
    while not condition():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_proxy_session_rotates_and_releases(resources: Resources) -> None:
    await add_proxies(resources, ["http://u:p@127.0.0.2:3128", "http://u:p@127.0.0.3:3128"])
    seen: list[str] = []

    async def via_proxy(task: Task, ctx: TaskContext) -> dict[str, Any]:
        async with ctx.proxy(wait_s=1) as proxy:
            seen.append(proxy.url)
            await proxy.rotate("banned", 403)  # the site blocked this IP
            seen.append(proxy.url)
        return parcel_data(task.key)

    producer = await make_token(resources, "parcel", "producer")
    async with _parcel_app(resources) as (_, http):
        await _enqueue(http, producer, ["p-1"])
        worker = Worker(
            WorkerClient(BASE, await make_token(resources, "parcel", "worker"), "w", http=http),
            ["alpha"],
            via_proxy,
            wait_s=0.5,
            result_delay_s=0.01,
        )
        await _run_until(worker, lambda: worker.stats.outcomes["accepted"] >= 1)
    assert worker.stats.outcomes["accepted"] == 1
    assert len(set(seen)) == 2
    [state] = await ProxyPool.for_resources(resources).tick()
    assert (state.available, state.leased, state.cooling) == (1, 0, 1)
