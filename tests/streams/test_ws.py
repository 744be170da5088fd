"""`WS /v1/ws` on a real HTTP server with a real WebSocket client: subscriptions, resume,
refusals and their close codes, caps shared with SSE, shutdown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from gateway.core.audience import Audience
from gateway.core.settings import Settings
from gateway.jobs.events import EventKeys
from tests.support.jobs import JobsHarness, event_validator, jobs_harness
from tests.support.streams import open_sse, served
from tests.support.tcp_proxy import redis_proxy
from tests.support.wait import wait_until
from tests.support.ws import WsClient, is_unsubscribed, open_ws


@pytest.fixture
async def base(h: JobsHarness) -> AsyncIterator[str]:
    # The WebSocket options the process serves the public port with (process/serve.py).
    options = h.resources.settings
    async with served(
        h.public_app,
        ws_ping_interval_s=options.ws_ping_interval_s,
        ws_max_message_bytes=options.ws_max_message_bytes,
    ) as url:
        yield url


async def stream_ids(h: JobsHarness, job_id: str) -> list[int]:
    """The sequence numbers in the job's Redis stream (what SSE and WS send as ids)."""
    keys = EventKeys(h.resources.settings.redis_key_prefix)
    entries: Any = await h.resources.redis.xrange(keys.stream(job_id))
    return [int(entry_id.decode().partition("-")[2]) for entry_id, _ in entries]


async def stream_has(h: JobsHarness, job_id: str, event_type: str) -> bool:
    """Whether the job's stream holds an event of `event_type`."""
    keys = EventKeys(h.resources.settings.redis_key_prefix)
    entries: Any = await h.resources.redis.xrange(keys.stream(job_id))
    return any(fields[b"type"].decode() == event_type for _, fields in entries)


def refusals(h: JobsHarness, reason: str) -> float:
    """`gateway_stream_refusals_total` of WebSockets for `reason`."""
    registry = h.resources.metrics.registry(Audience.PUBLIC)
    value = registry.get_sample_value(
        "gateway_stream_refusals_total", {"kind": "ws", "reason": reason}
    )
    return value or 0.0


def events_of(messages: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    """The `event` messages of one job."""
    return [m for m in messages if m["type"] == "event" and m["job_id"] == job_id]


async def subscribed_snapshot(ws: WsClient, job_id: str) -> dict[str, Any]:
    """Subscribe to `job_id`; its snapshot message (after the `subscribed` answer)."""
    await ws.subscribe(job_id)
    assert await ws.recv() == {"type": "subscribed", "job_id": job_id}
    snapshot = await ws.recv()
    assert snapshot["type"] == "event"
    assert snapshot["job_id"] == job_id
    assert snapshot["event"] == "snapshot"
    return snapshot


async def test_a_subscription_sends_the_state_then_the_job_stream_then_ends(
    h: JobsHarness, base: str
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["s-1", "s-2"])).json()
    token = await h.worker_token()
    validate = event_validator()
    async with open_ws(base, headers={"X-API-Key": key}) as ws:
        snapshot = await subscribed_snapshot(ws, job["id"])
        assert snapshot["data"]["id"] == job["id"]
        assert snapshot["data"]["state"] == "queued"
        assert int(snapshot["id"]) == (await stream_ids(h, job["id"]))[-1]
        assert await h.scrape(token, limit=1)
        assert await h.scrape(token, limit=1)
        rest = await ws.until(is_unsubscribed(job["id"]))
        # The subscription ended by itself; the socket is still open.
        await ws.send({"type": "ping"})
        assert await ws.recv() == {"type": "pong"}
    assert rest[-1] == {"type": "unsubscribed", "job_id": job["id"], "reason": "finished"}
    events = rest[:-1]
    assert all(m["type"] == "event" and m["job_id"] == job["id"] for m in events)
    assert events[-1]["event"] == "job.completed"
    for message in events:
        validate(message["data"])
        assert message["data"]["seq"] == int(message["id"])
        assert message["data"]["type"] == message["event"]
    ids = [int(m["id"]) for m in events]
    assert ids == [i for i in await stream_ids(h, job["id"]) if i > int(snapshot["id"])]


async def test_one_socket_follows_two_jobs(h: JobsHarness, base: str) -> None:
    key = await h.key()
    first = (await h.submit(key, ["a-1"])).json()
    second = (await h.submit(key, ["b-1"], platform="beta")).json()
    token = await h.worker_token()
    async with open_ws(base, headers={"X-API-Key": key}) as ws:
        snapshots = {j: await subscribed_snapshot(ws, j) for j in (first["id"], second["id"])}
        assert await h.scrape(token, platforms="alpha,beta")
        ended: set[str] = set()

        def both_ended(message: dict[str, Any]) -> bool:
            if message["type"] == "unsubscribed":
                ended.add(message["job_id"])
            return len(ended) == 2

        messages = await ws.until(both_ended)
    for job_id, snapshot in snapshots.items():
        ids = [int(m["id"]) for m in events_of(messages, job_id)]
        assert ids == [i for i in await stream_ids(h, job_id) if i > int(snapshot["id"])]
        assert events_of(messages, job_id)[-1]["event"] == "job.completed"
    assert {m["reason"] for m in messages if m["type"] == "unsubscribed"} == {"finished"}


async def test_a_subscription_resumes_after_its_last_event_id(h: JobsHarness, base: str) -> None:
    key = await h.key()
    job = (await h.submit(key, ["r-1", "r-2"])).json()
    token = await h.worker_token()
    async with open_ws(base, headers={"X-API-Key": key}) as ws:
        await subscribed_snapshot(ws, job["id"])
        assert await h.scrape(token, limit=1)
        seen = await ws.recv()
        assert seen["type"] == "event"
    # Offline while the job finishes, then back with the last id seen.
    assert await h.scrape(token, limit=1)
    await h.wait_state(key, job["id"], "completed")
    await wait_until(lambda: stream_has(h, job["id"], "job.completed"), what="published")
    async with open_ws(base, headers={"X-API-Key": key}) as ws:
        await ws.subscribe(job["id"], last_event_id=seen["id"])
        assert await ws.recv() == {"type": "subscribed", "job_id": job["id"]}
        resumed = await ws.until(is_unsubscribed(job["id"]))
        # Resuming at the terminal event: nothing to send, and the subscription ends.
        await ws.subscribe(job["id"], last_event_id=resumed[-2]["id"])
        assert await ws.until(is_unsubscribed(job["id"])) == [
            {"type": "subscribed", "job_id": job["id"]},
            {"type": "unsubscribed", "job_id": job["id"], "reason": "finished"},
        ]
    assert resumed[-1]["reason"] == "finished"
    ids = [int(m["id"]) for m in events_of(resumed, job["id"])]
    assert ids == [i for i in await stream_ids(h, job["id"]) if i > int(seen["id"])]
    assert resumed[-2]["event"] == "job.completed"


async def test_another_callers_job_and_no_such_job_are_refused_alike(
    h: JobsHarness, base: str
) -> None:
    alice = await h.key(user="alice")
    bob = await h.key(user="bob")
    job = (await h.submit(alice, ["x-1"])).json()
    missing = "job_" + "0" * 24
    reasons = []
    for job_id in (job["id"], missing):
        async with open_ws(base, headers={"X-API-Key": bob}) as ws:
            await ws.subscribe(job_id)
            closed = await ws.closed()
        assert closed.code == 4403
        reasons.append(closed.reason.replace(job_id, "<job>"))
    assert reasons[0] == reasons[1], "the same answer: no job's existence leaks"


@pytest.mark.parametrize(
    "headers", [{}, {"X-API-Key": "gk_not_a_real_key"}], ids=["none", "invalid"]
)
async def test_a_socket_without_valid_credentials_is_closed_4401(
    h: JobsHarness, base: str, headers: dict[str, str]
) -> None:
    async with open_ws(base, headers=headers) as ws:
        closed = await ws.closed()
    assert closed.code == 4401


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        '["subscribe"]',
        '{"type": "watch", "job_id": "job_000000000000000000000000"}',
        '{"type": "subscribe", "job_id": "../../etc/passwd"}',
        '{"type": "subscribe", "job_id": "job_000000000000000000000000", "last_event_id": "x"}',
        '{"type": "ping", "id": NaN}',
    ],
    ids=["not-json", "not-object", "unknown-type", "bad-job-id", "bad-last-id", "nan"],
)
async def test_a_bad_message_closes_the_socket_4400(
    h: JobsHarness, base: str, message: str
) -> None:
    key = await h.key()
    async with open_ws(base, headers={"X-API-Key": key}) as ws:
        await ws.send(message)
        closed = await ws.closed()
    assert closed.code == 4400
    assert closed.reason
    registry = h.resources.metrics.registry(Audience.PUBLIC)

    async def counted() -> bool:
        ended = registry.get_sample_value(
            "gateway_streams_ended_total", {"kind": "ws", "reason": "refused"}
        )
        return bool(ended)

    await wait_until(counted, what="the refused socket counted as ended: refused")


async def test_a_binary_message_closes_the_socket_4400(h: JobsHarness, base: str) -> None:
    key = await h.key()
    async with open_ws(base, headers={"X-API-Key": key}) as ws:
        await ws.socket.send(b'{"type":"ping"}')
        closed = await ws.closed()
    assert closed.code == 4400


async def test_ping_is_answered_with_its_id(h: JobsHarness, base: str) -> None:
    key = await h.key()
    async with open_ws(base, headers={"X-API-Key": key}) as ws:
        await ws.send({"type": "ping", "id": {"n": 7, "tag": "é"}})
        assert await ws.recv() == {"type": "pong", "id": {"n": 7, "tag": "é"}}
        await ws.send({"type": "ping"})
        assert await ws.recv() == {"type": "pong"}


async def test_subscribing_twice_sends_nothing_twice(h: JobsHarness, base: str) -> None:
    key = await h.key()
    job = (await h.submit(key, ["d-1"])).json()
    async with open_ws(base, headers={"X-API-Key": key}) as ws:
        await subscribed_snapshot(ws, job["id"])
        await ws.subscribe(job["id"])
        await ws.send({"type": "ping", "id": "after"})
        answers = await ws.until(lambda m: m["type"] == "pong")
    # Anything the second subscribe sent would come before the pong.
    assert answers == [
        {"type": "subscribed", "job_id": job["id"]},
        {"type": "pong", "id": "after"},
    ]


async def test_an_unsubscribed_job_sends_no_more_events(h: JobsHarness, base: str) -> None:
    key = await h.key()
    left = (await h.submit(key, ["u-1"])).json()
    kept = (await h.submit(key, ["k-1"], platform="beta")).json()
    token = await h.worker_token()
    async with open_ws(base, headers={"X-API-Key": key}) as ws:
        await subscribed_snapshot(ws, left["id"])
        await subscribed_snapshot(ws, kept["id"])
        await ws.send({"type": "unsubscribe", "job_id": left["id"]})
        assert await ws.recv() == {
            "type": "unsubscribed",
            "job_id": left["id"],
            "reason": "requested",
        }
        # The left job finishes first: its events are in the feed before the kept job's.
        assert await h.scrape(token, platforms="alpha")
        await wait_until(lambda: stream_has(h, left["id"], "job.completed"), what="published")
        assert await h.scrape(token, platforms="beta")
        after = await ws.until(is_unsubscribed(kept["id"]))
    assert events_of(after, left["id"]) == []
    assert events_of(after, kept["id"])[-1]["event"] == "job.completed"


async def test_more_subscriptions_than_allowed_close_the_socket_4429(settings: Settings) -> None:
    async with jobs_harness(settings, ws_max_subscriptions=1) as h, served(h.public_app) as base:
        key = await h.key()
        first = (await h.submit(key, ["m-1"])).json()
        second = (await h.submit(key, ["m-2"])).json()
        before = refusals(h, "too_many_subscriptions")
        async with open_ws(base, headers={"X-API-Key": key}) as ws:
            await subscribed_snapshot(ws, first["id"])
            await ws.subscribe(second["id"])
            closed = await ws.closed()
        assert closed.code == 4429
        assert refusals(h, "too_many_subscriptions") == before + 1


async def test_websocket_subscriptions_count_as_followers_of_the_job(settings: Settings) -> None:
    async with (
        jobs_harness(settings, sse_max_per_job=1) as h,
        served(h.public_app) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as web,
    ):
        key = await h.key()
        job = (await h.submit(key, ["c-1"])).json()
        before = refusals(h, "too_many_followers")
        async with open_sse(web, f"/v1/jobs/{job['id']}/events", headers={"X-API-Key": key}) as sse:
            # Held in a variable: an abandoned event iterator, once garbage collected,
            # closes the HTTP connection (and the SSE stream with it).
            events = sse.events()
            assert (await anext(events)).event == "snapshot"
            async with open_ws(base, headers={"X-API-Key": key}) as ws:
                await ws.subscribe(job["id"])
                closed = await ws.closed()
        assert closed.code == 4429
        assert refusals(h, "too_many_followers") == before + 1


async def test_heartbeats_reach_an_idle_socket(settings: Settings) -> None:
    async with jobs_harness(settings, sse_heartbeat_s=0.05) as h, served(h.public_app) as base:
        key = await h.key()
        async with open_ws(base, headers={"X-API-Key": key}) as ws:
            assert await ws.recv() == {"type": "heartbeat"}


async def test_a_client_that_falls_behind_is_closed_4008(settings: Settings) -> None:
    async with (
        jobs_harness(settings, stream_buffer_events=4) as h,
        served(h.public_app) as base,
    ):
        key = await h.key()
        job = (await h.submit(key, ["f-1"])).json()
        async with open_ws(base, headers={"X-API-Key": key}) as ws:
            await subscribed_snapshot(ws, job["id"])
            # More events of the job than its outbox holds, in one feed read: one
            # transaction, so the hub's reader gets them all in one reply.
            await publish_burst(h, job["id"], 5)
            closed = await ws.closed()
        assert closed.code == 4008


async def publish_burst(h: JobsHarness, job_id: str, count: int) -> None:
    """`count` entries of `job_id` on the job feed, at once (as a burst of events)."""
    keys = EventKeys(h.resources.settings.redis_key_prefix)
    at = datetime.now(UTC).isoformat()
    async with h.resources.redis.pipeline(transaction=True) as pipe:
        for seq in range(1000, 1000 + count):
            body = json.dumps({"id": f"{job_id}:{seq}", "type": "job.progress", "at": at})
            fields = {"job": job_id, "seq": str(seq), "type": "job.progress", "event": body}
            pipe.xadd(keys.feed, fields)  # type: ignore[arg-type]
        await pipe.execute()


async def test_a_stopping_process_closes_sockets_1012(h: JobsHarness, base: str) -> None:
    key = await h.key()
    job = (await h.submit(key, ["z-1"])).json()
    async with open_ws(base, headers={"X-API-Key": key}) as ws:
        await subscribed_snapshot(ws, job["id"])
        h.resources.stopping.set()
        closed = await ws.closed()
    assert closed.code == 1012


async def test_a_credential_in_the_url_closes_the_socket_4400(h: JobsHarness, base: str) -> None:
    key = await h.key()
    async with open_ws(base, query=f"api_key={key}") as ws:
        closed = await ws.closed()
    assert closed.code == 4400
    assert key not in closed.reason


async def test_a_message_over_the_size_limit_closes_the_socket_1009(
    h: JobsHarness, base: str
) -> None:
    key = await h.key()
    limit = h.resources.settings.ws_max_message_bytes
    async with open_ws(base, headers={"X-API-Key": key}) as ws:
        await ws.send({"type": "ping", "id": "x" * limit})
        closed = await ws.closed()
    assert closed.code == 1009


def open_sockets(h: JobsHarness) -> float:
    """`gateway_streams_open` of WebSockets in this process."""
    registry = h.resources.metrics.registry(Audience.PUBLIC)
    return registry.get_sample_value("gateway_streams_open", {"kind": "ws"}) or 0.0


async def test_a_socket_holds_one_of_the_callers_stream_places(settings: Settings) -> None:
    async with (
        jobs_harness(settings, sse_max_per_principal=1) as h,
        served(h.public_app) as base,
    ):
        key = await h.key()
        before = refusals(h, "too_many_streams")
        async with open_ws(base, headers={"X-API-Key": key}) as first:
            await first.send({"type": "ping"})
            assert await first.recv() == {"type": "pong"}
            async with open_ws(base, headers={"X-API-Key": key}) as second:
                closed = await second.closed()
        assert closed.code == 4429
        assert refusals(h, "too_many_streams") == before + 1
        # A closed socket gives its place back.
        await wait_until(lambda: open_sockets(h) == 0, what="sockets closed")
        async with open_ws(base, headers={"X-API-Key": key}) as third:
            await third.send({"type": "ping"})
            assert await third.recv() == {"type": "pong"}


async def test_redis_down_at_subscribe_closes_the_socket_1011(settings: Settings) -> None:
    assert settings.redis_url is not None
    proxy, proxied = redis_proxy(settings.redis_url)
    await proxy.start()
    try:
        async with jobs_harness(settings, redis_url=proxied) as h, served(h.public_app) as base:
            key = await h.key()
            job = (await h.submit(key, ["o-1"])).json()
            async with open_ws(base, headers={"X-API-Key": key}) as ws:
                await ws.send({"type": "ping"})
                assert await ws.recv() == {"type": "pong"}
                await proxy.cut()
                await ws.subscribe(job["id"])
                closed = await ws.closed()
                await proxy.restore()
            assert closed.code == 1011
            assert "redis" in closed.reason
    finally:
        await proxy.close()
