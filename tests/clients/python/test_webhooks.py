"""Webhooks through the SDK: endpoint management, and the verification helper checked on
the gateway's real deliveries against the Standard Webhooks reference library, through a
secret rotation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceError

from taxlien_gateway import (
    AsyncClient,
    Conflict,
    NotFound,
    WebhookVerificationError,
    WebhookVerifier,
    sign,
    verify_webhook,
)
from tests.support.jobs import JobsHarness
from tests.support.wait import wait_until
from tests.support.webhook_receiver import Received, WebhookReceiver

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    server.start()
    yield server
    server.stop()


async def delivered(receiver: WebhookReceiver, count: int) -> list[Received]:
    """The first `count` requests the receiver got (waiting for them, bounded)."""
    await wait_until(lambda: len(receiver.received) >= count, what=f"{count} deliveries")
    return receiver.received[:count]


async def test_a_real_delivery_verifies_with_the_sdk_as_with_the_reference_library(
    h: JobsHarness, gw: AsyncClient, receiver: WebhookReceiver
) -> None:
    endpoint = await gw.webhooks.create(receiver.url("/ok"), ["job.completed"])
    job = await gw.jobs.create("parcel_refresh", [{"platform": "alpha", "parcel_id": "wh-1"}])
    assert await h.scrape(await h.worker_token())
    [got] = await delivered(receiver, 1)

    message = WebhookVerifier(endpoint.secret).verify(got.body, got.headers)
    reference = Webhook(endpoint.secret).verify(got.body, got.headers)
    assert message.type == reference["type"] == "job.completed"
    assert message.data == reference["data"]
    assert message.webhook_id == got.headers["webhook-id"]
    event = message.job_event()
    assert (event.job_id, event.type, event.data.state) == (job.id, "job.completed", "completed")

    async def logged() -> bool:
        found = [d async for d in gw.webhooks.deliveries(endpoint.id)]
        return [(d.id, d.state) for d in found] == [(message.webhook_id, "succeeded")]

    await wait_until(logged, what="the delivery logged as succeeded")

    tampered = got.body.replace(b"completed", b"cancelled", 1)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(endpoint.secret, tampered, got.headers)
    with pytest.raises(ReferenceError):
        Webhook(endpoint.secret).verify(tampered, got.headers)
    other_secret = (await gw.webhooks.create(receiver.url("/ok"), ["job.failed"])).secret
    with pytest.raises(WebhookVerificationError, match="no signature"):
        verify_webhook(other_secret, got.body, got.headers)
    stamp = int(got.headers["webhook-timestamp"])
    with pytest.raises(WebhookVerificationError, match="too old"):
        WebhookVerifier(endpoint.secret).verify(got.body, got.headers, now=stamp + 301)


async def test_during_a_rotation_either_secret_verifies_the_delivery(
    gw: AsyncClient, receiver: WebhookReceiver
) -> None:
    endpoint = await gw.webhooks.create(receiver.url("/ok"), ["job.completed"])
    rotated = await gw.webhooks.rotate_secret(endpoint.id)
    assert rotated.previous_secret_expires_at is not None
    queued = await gw.webhooks.test(endpoint.id)
    assert queued.event_type == "webhook.test"
    [got] = await delivered(receiver, 1)
    assert len(got.headers["webhook-signature"].split()) == 2  # one per secret
    for secrets in ([endpoint.secret], [rotated.secret], [endpoint.secret, rotated.secret]):
        message = WebhookVerifier(secrets).verify(got.body, got.headers)
        assert message.type == "webhook.test"
        assert message.data == {"endpoint_id": endpoint.id}
    for secret in (endpoint.secret, rotated.secret):
        assert Webhook(secret).verify(got.body, got.headers)["type"] == "webhook.test"


def test_sign_matches_the_reference_library() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = json.dumps({"type": "webhook.test", "data": {"n": 1}})
    at = datetime(2026, 12, 4, 1, 2, 3, tzinfo=UTC)
    ours = sign(secret, "msg_1", int(at.timestamp()), body.encode())
    assert ours == Webhook(secret).sign("msg_1", at, body)


async def test_endpoints_are_managed_through_the_sdk(
    gw: AsyncClient, receiver: WebhookReceiver
) -> None:
    first = await gw.webhooks.create(receiver.url("/ok"), ["job.failed"], description="desk")
    second = await gw.webhooks.create(receiver.url("/ok"), ["parcel.changed"])
    assert [e.id async for e in gw.webhooks.list(limit=1)] == [second.id, first.id]
    changed = await gw.webhooks.update(first.id, description=None, events=["job.completed"])
    assert (changed.description, changed.events) == (None, ["job.completed"])
    disabled = await gw.webhooks.update(first.id, enabled=False)
    assert (disabled.enabled, disabled.disabled_reason) == (False, "owner")
    with pytest.raises(Conflict):
        await gw.webhooks.test(first.id)
    await gw.webhooks.update(first.id, enabled=True)
    queued = await gw.webhooks.test(first.id)
    await delivered(receiver, 1)
    again = await gw.webhooks.redeliver(first.id, queued.id)
    assert again.id == queued.id
    redelivered = await delivered(receiver, 2)
    assert {r.headers["webhook-id"] for r in redelivered} == {queued.id}  # same id
    assert (await gw.webhooks.delivery(first.id, queued.id)).event_type == "webhook.test"
    await gw.webhooks.delete(first.id)
    with pytest.raises(NotFound):
        await gw.webhooks.get(first.id)
