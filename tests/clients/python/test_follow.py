"""Following a job over Server-Sent Events: typed events until the terminal one, and a
connection cut mid-job resumed with `Last-Event-ID`, with no event lost or repeated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from gateway.core.audience import Audience
from taxlien_gateway import AsyncClient, Client, JobEvent, JobSnapshot, Retry
from taxlien_gateway.models import FollowEvent
from tests.clients.python.conftest import in_thread
from tests.support.jobs import JobsHarness
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


def resumes(h: JobsHarness) -> float:
    registry = h.resources.metrics.registry(Audience.PUBLIC)
    return registry.get_sample_value("gateway_stream_resumes_total", {"kind": "sse"}) or 0.0


@pytest.fixture
async def proxy(base_url: str) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of the served gateway, to cut its connections."""
    port = urlsplit(base_url).port
    assert port is not None
    cutter = TcpProxy("127.0.0.1", port)
    await cutter.start()
    yield cutter
    await cutter.close()


async def test_follow_yields_the_snapshot_then_typed_events_until_the_terminal_one(
    h: JobsHarness, gw: AsyncClient
) -> None:
    job = await gw.jobs.create(
        "parcel_refresh", [{"platform": "alpha", "parcel_id": f"f-{n}"} for n in range(3)]
    )
    token = await h.worker_token()
    events = gw.jobs.follow(job.id)
    first = await anext(events)
    assert isinstance(first, JobSnapshot)
    assert first.kind == "snapshot"
    assert first.job.id == job.id
    received: list[FollowEvent] = []
    while await h.scrape(token, limit=1):
        received.append(await anext(events))
    received += [event async for event in events]  # ends by itself after the terminal one
    assert all(isinstance(e, JobEvent) for e in received)
    typed = [e for e in received if isinstance(e, JobEvent)]
    assert typed[-1].type == "job.completed"
    assert typed[-1].terminal
    assert typed[-1].data.progress.succeeded == 3
    published = await h.jobs.publisher.read(job.id, after=first.seq)
    assert [e.seq for e in typed] == [p.seq for p in published]


async def test_a_cut_connection_is_resumed_without_gap_or_duplicate(
    h: JobsHarness, proxy: TcpProxy, key: str
) -> None:
    seen: list[Retry] = []
    url = f"http://127.0.0.1:{proxy.port}"
    async with AsyncClient(url, api_key=key, on_retry=seen.append) as gw:
        job = await gw.jobs.create(
            "parcel_refresh", [{"platform": "alpha", "parcel_id": f"c-{n}"} for n in range(4)]
        )
        token = await h.worker_token()
        events = gw.jobs.follow(job.id)
        snapshot = await anext(events)
        assert isinstance(snapshot, JobSnapshot)
        assert await h.scrape(token, limit=1)
        before_cut = await anext(events)
        assert isinstance(before_cut, JobEvent)
        resumed_before = resumes(h)

        await proxy.cut()  # the connection drops mid-job...
        await proxy.restore()
        for _ in range(2):  # ...while the job goes on
            assert await h.scrape(token, limit=1)
        missed = await h.jobs.publisher.read(job.id, after=before_cut.seq)
        replayed = [await anext(events) for _ in missed]  # reconnected with Last-Event-ID
        assert resumes(h) > resumed_before
        assert await h.scrape(token, limit=1)  # the last item
        live = [e async for e in events]  # to the terminal event

    assert [r.error is not None for r in seen] == [True]  # one reconnect, after the cut
    typed = [e for e in replayed + live if isinstance(e, JobEvent)]
    assert typed == replayed + live  # a resume replays events, not a new snapshot
    published = await h.jobs.publisher.read(job.id, after=before_cut.seq)
    assert [e.seq for e in typed] == [p.seq for p in published]  # no gap, no duplicate
    assert typed[-1].type == "job.completed"


async def test_the_sync_follower_and_wait(h: JobsHarness, base_url: str, key: str) -> None:
    created = (await h.submit(key, ["sy-1"])).json()
    assert await h.scrape(await h.worker_token())
    await h.wait_state(key, created["id"], "completed")

    def follow() -> tuple[list[FollowEvent], str]:
        with Client(base_url, api_key=key) as gw:
            events = list(gw.jobs.follow(created["id"]))
            return events, gw.jobs.wait(created["id"]).state

    events, state = await in_thread(follow)
    [snapshot] = events  # a finished job's stream is its snapshot alone
    assert isinstance(snapshot, JobSnapshot)
    assert snapshot.job.state == "completed"
    assert state == "completed"


async def test_resuming_after_the_terminal_event_yields_nothing(
    h: JobsHarness, gw: AsyncClient, key: str
) -> None:
    created = (await h.submit(key, ["t-1"])).json()
    assert await h.scrape(await h.worker_token())
    await h.wait_state(key, created["id"], "completed")
    (last,) = (await h.jobs.publisher.read(created["id"]))[-1:]
    assert [e async for e in gw.jobs.follow(created["id"], last_event_id=str(last.seq))] == []
