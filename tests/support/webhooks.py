"""Helpers of the webhook tests: a harness whose delivery loop the test steps by hand,
a dispatcher of the test's own, and reading deliveries back as a receiver and the API
see them. The fixtures (`receiver`, `stepped`) are in `tests/support/webhook_fixtures.py`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from gateway.core.settings import Settings
from gateway.webhooks.dispatcher import RETRY_DELAYS_S, Dispatcher
from gateway.webhooks.plane import WebhooksPlane
from gateway.webhooks.sender import WebhookSender
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.webhook_receiver import Received

OVERRIDES: dict[str, Any] = {
    "webhook_allow_private_networks": True,
    "webhook_dispatch_interval_s": 600.0,
}
# Retries due at once, so a test sees the second attempt without waiting 5 s.
NO_WAIT = (0.0,) * len(RETRY_DELAYS_S)


def plane_of(h: JobsHarness) -> WebhooksPlane:
    plane: WebhooksPlane = h.public_app.state.planes["webhooks"]
    return plane


@contextlib.asynccontextmanager
async def dispatcher(h: JobsHarness, **options: Any) -> AsyncIterator[Dispatcher]:
    """A dispatcher of its own on the harness's database (settings overridable)."""
    settings = h.resources.settings.model_copy(update=options.pop("settings", {}))
    sender = WebhookSender(allow_private=True)
    d = Dispatcher(h.resources.sessionmaker, sender, settings, **options)
    try:
        yield d
    finally:
        await d.close(0)
        await sender.aclose()


async def send_once(d: Dispatcher) -> int:
    """One dispatcher step and every send it started; how many it claimed."""
    claimed = await d.step()
    await d.drain()
    return claimed


async def endpoint(h: JobsHarness, key: str, url: str, events: list[str]) -> dict[str, Any]:
    """Register an endpoint over the API; the answer (with its secret)."""
    response = await h.public.post(
        "/v1/webhooks", json={"url": url, "events": events}, headers={"X-API-Key": key}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def completed_job(h: JobsHarness, key: str, parcels: list[str] | None = None) -> str:
    """Submit a job and let a worker complete it; its id."""
    submitted = await h.submit(key, parcels or ["d-1"])
    assert submitted.status_code in (200, 201, 202), submitted.text
    job_id: str = submitted.json()["id"]
    token = await h.worker_token()
    await h.wait_state(key, job_id, "queued", "running")
    assert await h.scrape(token)
    await h.wait_state(key, job_id, "completed")
    return job_id


async def deliveries(h: JobsHarness, key: str, endpoint_id: str) -> list[dict[str, Any]]:
    """The endpoint's deliveries log over the API."""
    response = await h.public.get(
        f"/v1/webhooks/{endpoint_id}/deliveries", headers={"X-API-Key": key}
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def endpoint_state(h: JobsHarness, key: str, endpoint_id: str) -> dict[str, Any]:
    response = await h.public.get(f"/v1/webhooks/{endpoint_id}", headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def verified(secret: str, got: Received) -> dict[str, Any]:
    """The payload of a received request, verified like a receiver would."""
    payload: dict[str, Any] = Webhook(secret).verify(got.body, got.headers)
    return payload


async def sql(h: JobsHarness, statement: str, **params: Any) -> None:
    async with h.resources.sessionmaker() as session, session.begin():
        await session.execute(text(statement), params)


@contextlib.asynccontextmanager
async def stepped_harness(settings: Settings, **overrides: Any) -> AsyncIterator[JobsHarness]:
    """One gateway's apps; loopback receivers allowed, its delivery loop stopped (the
    test runs the steps)."""
    async with jobs_harness(settings, **{**OVERRIDES, **overrides}) as harness:
        # Stopped, not just idle: its first step, at startup, could otherwise still be
        # running when a test's first delivery is due. (Stopping twice is harmless.)
        await plane_of(harness).stop()
        yield harness
