"""The delivery loop wakes on outbox inserts (LISTEN/NOTIFY), reconnects its listener
after losing it, and steps again when a step left work behind and room frees up.

The polls here are an hour apart (`webhook_dispatch_interval_s`), so anything delivered
after the loop's first step was woken, not polled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from gateway.core.settings import Settings
from gateway.webhooks.plane import WebhooksPlane
from gateway.webhooks.repository.notify import CHANNEL
from gateway.webhooks.wakeup import OutboxListener, listen_dsn
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import dispatcher, endpoint

pytestmark = pytest.mark.integration

HOUR = {"webhook_allow_private_networks": True, "webhook_dispatch_interval_s": 3600.0}


def plane_of(h: JobsHarness) -> WebhooksPlane:
    plane: WebhooksPlane = h.public_app.state.planes["webhooks"]
    return plane


async def queue_tests(h: JobsHarness, key: str, endpoint_id: str, n: int) -> None:
    for _ in range(n):
        response = await h.public.post(
            f"/v1/webhooks/{endpoint_id}/test", headers={"X-API-Key": key}
        )
        assert response.status_code == 202, response.text


async def listening(h: JobsHarness) -> None:
    """Wait until the plane's listener has its LISTEN connection (first step done)."""
    listener = plane_of(h).delivery.listener
    assert listener is not None
    await wait_until(lambda: listener.server_pid is not None, what="the listener connected")


async def test_an_insert_is_delivered_without_waiting_for_the_poll(
    settings: Settings, receiver: WebhookReceiver
) -> None:
    async with jobs_harness(settings, **HOUR) as h:
        await listening(h)
        key = await h.key()
        wh = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
        # Not rate limited (the tier's 10/s would leave most of them to the poll).
        async with h.resources.sessionmaker() as session, session.begin():
            await session.execute(
                text("UPDATE webhook_endpoints SET rate_per_s = NULL WHERE id = :id"),
                {"id": wh["id"]},
            )
        # Far more than the endpoint's in-flight cap (4): the loop steps again whenever
        # one of its sends ends, with no poll between.
        await queue_tests(h, key, wh["id"], 70)
        await wait_until(lambda: len(receiver.received) == 70, what="every test delivered")
        assert len({r.headers["webhook-id"] for r in receiver.received}) == 70


async def test_the_listener_reconnects_after_losing_its_connection(
    settings: Settings, receiver: WebhookReceiver
) -> None:
    async with jobs_harness(settings, **HOUR) as h:
        await listening(h)
        listener = plane_of(h).delivery.listener
        assert listener is not None
        lost = listener.server_pid
        async with h.resources.sessionmaker() as session:
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": lost})
        await wait_until(
            lambda: listener.server_pid not in (None, lost), what="a new LISTEN connection"
        )
        key = await h.key()
        wh = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
        await queue_tests(h, key, wh["id"], 1)
        await wait_until(lambda: len(receiver.received) == 1, what="the test delivered")
        [sample] = next(iter(plane_of(h).delivery.metrics.listening.collect())).samples
        assert sample.value == 1


async def test_outbox_inserts_notify_once_per_transaction(settings: Settings) -> None:
    async with jobs_harness(settings, **HOUR) as h:
        await plane_of(h).stop()
        woken: list[int] = []
        listener = OutboxListener(listen_dsn(h.resources.engine.url), lambda: woken.append(1))
        listener.start()
        try:
            await wait_until(lambda: woken == [1], what="the wake after connecting")
            key = await h.key()
            response = await h.public.post(
                "/v1/webhooks",
                json={"url": "http://127.0.0.1:65000/x", "events": ["webhook.test"]},
                headers={"X-API-Key": key},
            )
            wh = response.json()["id"]
            # Three statements in one transaction, each inserting: one notification.
            async with h.resources.sessionmaker() as session, session.begin():
                for n in range(3):
                    await session.execute(
                        text(
                            "INSERT INTO webhook_deliveries (id, endpoint_id, event_type,"
                            " event_id, payload, next_attempt_at)"
                            " VALUES (:id, :wh, 'webhook.test', :id, '{}', now())"
                        ),
                        {"id": f"msg_{n:024d}", "wh": wh},
                    )
                assert woken == [1]  # nothing before the commit
            # A second transaction's notification marks where the first one's ended.
            async with h.resources.sessionmaker() as session, session.begin():
                await session.execute(text(f"NOTIFY {CHANNEL}, 'marker'"))
            await wait_until(lambda: len(woken) >= 3, what="both notifications")
            assert len(woken) == 3
        finally:
            await listener.stop()


async def test_a_full_batch_asks_for_a_step_once_room_frees(
    h_stopped: JobsHarness, receiver: WebhookReceiver
) -> None:
    h = h_stopped
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
    await queue_tests(h, key, wh["id"], 3)
    room = asyncio.Event()
    async with dispatcher(h, max_in_flight=2, on_room=room.set) as d:
        assert await d.step() == 2  # a full batch
        await wait_until(room.is_set, what="room for the next step")
        room.clear()
        assert await d.step() == 1  # the rest: a partial batch, nothing held back
        await d.drain()
        # Its send ended: a partial batch asks again (the rest might have been capped).
        assert room.is_set()
        room.clear()
        assert await d.step() == 0
        await d.drain()
        assert not room.is_set()  # nothing claimed: wait for a notification or the poll
    assert len(receiver.received) == 3


async def test_endpoints_at_their_cap_ask_for_a_step_when_a_send_ends(
    h_stopped: JobsHarness, receiver: WebhookReceiver
) -> None:
    h = h_stopped
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
    await queue_tests(h, key, wh["id"], 2)
    room = asyncio.Event()
    async with dispatcher(h, per_endpoint=1, on_room=room.set) as d:
        assert await d.step() == 1  # the other one is held by the endpoint's cap
        await wait_until(room.is_set, what="the send ending")
        assert await d.step() == 1
        await d.drain()
    assert len(receiver.received) == 2


@pytest.fixture
async def h_stopped(settings: Settings) -> AsyncIterator[JobsHarness]:
    async with jobs_harness(settings, **HOUR) as harness:
        await plane_of(harness).stop()
        yield harness


async def test_a_redelivery_wakes_the_loop_too(
    settings: Settings, receiver: WebhookReceiver
) -> None:
    async with jobs_harness(settings, **HOUR) as h:
        await listening(h)
        key = await h.key()
        wh = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
        await queue_tests(h, key, wh["id"], 1)
        await wait_until(lambda: len(receiver.received) == 1, what="the test delivered")
        delivery_id = receiver.received[0].headers["webhook-id"]

        async def succeeded() -> bool:
            found = await h.public.get(
                f"/v1/webhooks/{wh['id']}/deliveries/{delivery_id}", headers={"X-API-Key": key}
            )
            return bool(found.json()["state"] == "succeeded")

        await wait_until(succeeded, what="the first attempt recorded")
        # An UPDATE, which no trigger sees: the service notifies itself.
        again = await h.public.post(
            f"/v1/webhooks/{wh['id']}/deliveries/{delivery_id}/redeliver",
            headers={"X-API-Key": key},
        )
        assert again.status_code == 202, again.text
        await wait_until(lambda: len(receiver.received) == 2, what="the redelivery")
        assert receiver.received[1].headers["webhook-id"] == delivery_id


async def test_a_process_with_delivery_off_neither_polls_nor_listens(settings: Settings) -> None:
    async with jobs_harness(settings, **HOUR, webhook_delivery=False) as h:
        delivery = plane_of(h).delivery
        assert not delivery.running
        assert delivery.listener is not None
        assert delivery.listener.server_pid is None  # never started
    async with jobs_harness(settings, **HOUR) as h:
        assert plane_of(h).delivery.running
