"""Stream tickets: what a browser uses instead of headers, once, for a minute."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from gateway.core.audience import Audience
from gateway.core.errors import Unauthorized
from gateway.core.settings import Environment, Settings
from gateway.jobs.owner import Owner
from gateway.streams.plane import StreamsPlane
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.public import metric_value
from tests.support.streams import open_sse
from tests.support.ws import open_ws

ORIGIN = "https://app.example.test"


@pytest.fixture
def harness_overrides() -> dict[str, Any]:
    return {"cors_origins": [ORIGIN]}


def streams_of(h: JobsHarness) -> StreamsPlane:
    plane: StreamsPlane = h.public_app.state.planes["streams"]
    return plane


async def ticket_for(h: JobsHarness, key: str, job_ids: list[str] | None = None) -> str:
    body = None if job_ids is None else {"job_ids": job_ids}
    response = await h.public.post("/v1/stream-tickets", json=body, headers={"X-API-Key": key})
    assert response.status_code == 201, response.text
    issued = response.json()
    assert issued["job_ids"] == (None if job_ids is None else sorted(job_ids))
    ticket: str = issued["ticket"]
    return ticket


async def job_of(h: JobsHarness, key: str, parcel: str) -> str:
    response = await h.submit(key, [parcel])
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


async def test_a_ticket_opens_a_stream_without_headers_and_only_once(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job_id = await job_of(h, key, "t-1")
    ticket = await ticket_for(h, key)
    url = f"/v1/jobs/{job_id}/events?ticket={ticket}"
    async with open_sse(web, url) as sse:
        assert sse.response.status_code == 200
        first = await anext(sse.events())
        assert first.event == "snapshot"
        assert first.json()["id"] == job_id
    # EventSource would reconnect with the same URL: the ticket is spent.
    again = await web.get(url)
    assert again.status_code == 401
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["reason"] == "ticket_used"
    assert ticket not in again.text


async def test_an_expired_ticket_is_refused(h: JobsHarness, web: httpx.AsyncClient) -> None:
    key = await h.key()
    job_id = await job_of(h, key, "t-2")
    owner = Owner(id="api_key:x", tier=h.public_plane.tiers.get("pro"))
    issued = await streams_of(h).tickets.issue(owner, None, now=time.time() - 3600)
    response = await web.get(f"/v1/jobs/{job_id}/events?ticket={issued.ticket}")
    assert response.status_code == 401
    assert response.json()["reason"] == "ticket_expired"
    metrics = (await h.public.get("/metrics")).text
    assert metric_value(metrics, "gateway_stream_refusals_total", kind="sse", reason="ticket") >= 1


async def test_a_ticket_watches_only_its_jobs_and_only_its_owners(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    alice = await h.key(user="alice")
    bob = await h.key(user="bob")
    mine, other = await job_of(h, alice, "t-3"), await job_of(h, alice, "t-4")
    bobs = await job_of(h, bob, "t-5")
    narrow = await ticket_for(h, alice, [mine])
    response = await web.get(f"/v1/jobs/{other}/events?ticket={narrow}")
    assert response.status_code == 403
    assert other in response.json()["detail"]
    # A ticket for every job of alice's still never reaches bob's.
    wide = await ticket_for(h, alice)
    response = await web.get(f"/v1/jobs/{bobs}/events?ticket={wide}")
    assert response.status_code == 404
    # Asking for a ticket to somebody else's job names it, and issues nothing.
    refused = await h.public.post(
        "/v1/stream-tickets", json={"job_ids": [mine, bobs]}, headers={"X-API-Key": alice}
    )
    assert refused.status_code == 404
    assert bobs in refused.json()["detail"]


async def test_tickets_work_on_stream_routes_only_and_never_with_a_header(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job_id = await job_of(h, key, "t-6")
    ticket = await ticket_for(h, key)
    # Anywhere else a ticket is no credential at all.
    elsewhere = await web.get(f"/v1/jobs/{job_id}?ticket={ticket}")
    assert elsewhere.status_code == 401
    # Ticket plus header is ambiguous (and does not spend the ticket).
    both = await web.get(f"/v1/jobs/{job_id}/events?ticket={ticket}", headers={"X-API-Key": key})
    assert both.status_code == 401
    assert both.json()["reason"] == "ambiguous_credentials"
    async with open_sse(web, f"/v1/jobs/{job_id}/events?ticket={ticket}") as sse:
        assert sse.response.status_code == 200


@pytest.mark.parametrize("param", ["api_key", "token", "access_token", "key"])
async def test_a_credential_in_a_stream_url_is_refused(
    h: JobsHarness, web: httpx.AsyncClient, param: str
) -> None:
    key = await h.key()
    job_id = await job_of(h, key, "t-7")
    response = await web.get(f"/v1/jobs/{job_id}/events?{param}={key}")
    assert response.status_code == 400
    problem = response.json()
    assert problem["type"].endswith("/credentials-in-query")
    assert "stream-tickets" in problem["detail"]
    assert key not in response.text


@pytest.mark.parametrize(
    "forged",
    [
        "not-a-ticket",
        "a.b.c",
        "eyJ2IjoxfQ.AAAA",  # a payload without a key id
    ],
)
async def test_a_malformed_or_forged_ticket_is_invalid(
    h: JobsHarness, web: httpx.AsyncClient, forged: str
) -> None:
    key = await h.key()
    job_id = await job_of(h, key, "t-8")
    response = await web.get(f"/v1/jobs/{job_id}/events?ticket={forged}")
    assert response.status_code == 401
    assert response.json()["reason"] == "ticket_invalid"


async def test_a_tampered_ticket_or_a_download_token_is_invalid(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job_id = await job_of(h, key, "t-9")
    ticket = await ticket_for(h, key, [job_id])
    body, signature = ticket.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    response = await web.get(f"/v1/jobs/{job_id}/events?ticket={body}.{flipped}")
    assert response.json()["reason"] == "ticket_invalid"
    link = await h.public.post(f"/v1/jobs/{job_id}/download", headers={"X-API-Key": key})
    token = link.json()["url"].rsplit("/", 1)[-1] if link.status_code == 201 else "x.y"
    response = await web.get(f"/v1/jobs/{job_id}/events?ticket={token}")
    assert response.status_code == 401
    assert response.json()["reason"] == "ticket_invalid"


async def test_a_browser_origin_may_ask_for_a_ticket_and_read_the_stream(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    job_id = await job_of(h, key, "t-10")
    preflight = await web.options(
        "/v1/stream-tickets",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    issued = await web.post(
        "/v1/stream-tickets", json=None, headers={"X-API-Key": key, "Origin": ORIGIN}
    )
    assert issued.headers["access-control-allow-origin"] == ORIGIN
    ticket = issued.json()["ticket"]
    async with open_sse(
        web, f"/v1/jobs/{job_id}/events?ticket={ticket}", headers={"Origin": ORIGIN}
    ) as sse:
        assert sse.response.status_code == 200
        assert sse.response.headers["access-control-allow-origin"] == ORIGIN


async def test_production_without_ticket_keys_issues_no_tickets(settings: Settings) -> None:
    production = {"environment": Environment.PRODUCTION, "redis_allow_volatile": True}
    async with jobs_harness(settings, **production) as h:
        key = await h.key()
        response = await h.public.post("/v1/stream-tickets", headers={"X-API-Key": key})
        assert response.status_code == 503
        assert "STREAM_TICKET_KEYS" in response.json()["detail"]


async def test_configured_ticket_keys_sign_and_rotate(settings: Settings) -> None:
    old = ("k1", SecretStr("o" * 32))
    new = ("k2", SecretStr("n" * 32))
    async with jobs_harness(settings, stream_ticket_keys=[old]) as h:
        key = await h.key()
        ticket = await ticket_for(h, key)
    # Rotated: the new key signs, the old one still verifies what it signed.
    async with jobs_harness(settings, stream_ticket_keys=[new, old]) as h:
        granted = await streams_of(h).tickets.redeem(ticket)
        assert granted.owner.id.startswith("api_key:")
    # Dropped: what the old key signed is no longer genuine.
    async with jobs_harness(settings, stream_ticket_keys=[new]) as h:
        with pytest.raises(Unauthorized) as refused:
            await streams_of(h).tickets.redeem(ticket)
        assert refused.value.extra["reason"] == "ticket_invalid"


async def test_a_ticket_opens_a_websocket_for_the_jobs_it_names_only_once(
    h: JobsHarness, web: httpx.AsyncClient
) -> None:
    key = await h.key()
    mine, other = await job_of(h, key, "t-11"), await job_of(h, key, "t-12")
    ticket = await ticket_for(h, key, [mine])
    base = str(web.base_url).rstrip("/")
    async with open_ws(base, query=f"ticket={ticket}") as ws:
        await ws.subscribe(mine)
        assert (await ws.recv()) == {"type": "subscribed", "job_id": mine}
        snapshot = await ws.recv()
        assert (snapshot["event"], snapshot["job_id"]) == ("snapshot", mine)
        # The ticket names one job: another of the same owner's is refused.
        await ws.subscribe(other)
        closed = await ws.closed()
        assert closed.code == 4403
        assert other in closed.reason
    async with open_ws(base, query=f"ticket={ticket}") as again:
        closed = await again.closed()
    assert closed.code == 4401
    assert "already used" in closed.reason
    registry = h.resources.metrics.registry(Audience.PUBLIC)
    refused = registry.get_sample_value(
        "gateway_stream_refusals_total", {"kind": "ws", "reason": "ticket"}
    )
    assert refused is not None
    assert refused >= 2
