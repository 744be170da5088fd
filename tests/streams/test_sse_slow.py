"""A client that stops reading is dropped; the others following the same job are not.

The slow client is a raw socket with a tiny receive buffer that never reads: the
server's writes to it back up (transport buffer over HTTP_WRITE_BUFFER_BYTES), its
outbox fills past STREAM_BUFFER_EVENTS, and once the write stall deadline aborts the
connection it ends as `slow`. A normal client reading the same job meanwhile receives
every event, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.jobs.events import make_event
from gateway.process.connection_limits import ConnectionLimits
from tests.support.jobs import JobsHarness
from tests.support.public import metric_value
from tests.support.streams import open_sse, served
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

PADDING = 64 * 1024  # bytes of filler per event: a few fill any socket buffer
MAX_EVENTS = 2000  # bounds a failing test only


@pytest.fixture
def harness_overrides() -> dict[str, Any]:
    return {
        "stream_buffer_events": 4,
        "http_write_buffer_bytes": 4096,
        "http_write_stall_timeout_s": 1,
        # Big events: keep what Redis holds of them small.
        "job_events_max": 10,
        "job_feed_max": 100,
    }


@contextlib.contextmanager
def stalled_reader(base: str, path: str, key: str) -> Iterator[socket.socket]:
    """A connection that asks for `path` as an event stream and never reads a byte."""
    parts = urlsplit(base)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Before connecting, so the window it advertises is tiny from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nX-API-Key: {key}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        yield sock
    finally:
        sock.close()


def read_until_closed(sock: socket.socket) -> None:
    """Read (now at last) until the server's end of the connection is gone."""
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(1 << 16):
            pass


async def slow_drops(h: JobsHarness) -> float:
    metrics = (await h.public.get("/metrics")).text
    return metric_value(metrics, "gateway_stream_slow_drops_total", kind="sse")


async def test_a_client_that_stops_reading_is_dropped_and_the_others_get_everything(
    h: JobsHarness,
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["slow-1"])).json()
    (queued,) = await h.jobs.publisher.read(job["id"])
    plane = h.public_app.state.planes["streams"]
    limits = ConnectionLimits.from_settings(h.resources.settings)
    drops_before = await slow_drops(h)
    path = f"/v1/jobs/{job['id']}/events"
    async with (
        served(h.public_app, limits=limits) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as web,
        open_sse(web, path, headers={"X-API-Key": key}) as fast,
    ):
        events = fast.events()
        snapshot = await anext(events)
        assert snapshot.event == "snapshot"
        with stalled_reader(base, path, key) as slow:
            await wait_until(lambda: plane.hub.following == 2, what="both clients following")
            seq = int(snapshot.id or 0)
            published: list[int] = []
            received: list[int] = []
            while await slow_drops(h) == drops_before:
                assert len(published) < MAX_EVENTS, "the stalled client was never dropped"
                seq += 1
                data = {"state": "running", "progress": {}, "padding": "x" * PADDING}
                event = make_event(
                    job["id"], queued.owner, seq, "job.progress", datetime.now(UTC), data
                )
                assert await h.jobs.publisher.publish([event]) == 1
                published.append(seq)
                # Paced by the fast client: it never falls behind, the stalled one does.
                got = await anext(events)
                received.append(int(got.id or 0))
                assert got.json()["data"]["padding"] == data["padding"]
            # The stalled connection was cut: reading it now finds its end.
            await asyncio.to_thread(read_until_closed, slow)
        assert received == published
        assert len(published) > 4  # more than its outbox holds went to the stalled client

        # The fast client is still served.
        event = make_event(job["id"], queued.owner, seq + 1, "job.progress", datetime.now(UTC), {})
        await h.jobs.publisher.publish([event])
        assert int((await anext(events)).id or 0) == seq + 1
    assert await slow_drops(h) > drops_before
