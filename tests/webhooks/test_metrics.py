"""Webhook metrics move where delivery decides, read from the public port's /metrics as
an operator would: deliveries by outcome, attempt latency, fan-out, the outbox backlog
and its oldest due age, endpoints disabled by reason.

Each test compares with the value before its own traffic (the registry belongs to the
harness, but the comparison holds whatever else was counted).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.core.settings import Settings
from gateway.webhooks.dispatcher import Dispatcher
from gateway.webhooks.metrics import DISABLE_REASONS, OUTCOMES
from gateway.webhooks.sender import WebhookSender
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.public import metric_value
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import (
    NO_WAIT,
    OVERRIDES,
    completed_job,
    endpoint,
    plane_of,
    sql,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def h(stepped: JobsHarness) -> JobsHarness:
    return stepped


@contextlib.asynccontextmanager
async def exported_dispatcher(h: JobsHarness, **options: Any) -> AsyncIterator[Dispatcher]:
    """A dispatcher counting into the plane's (exported) metrics."""
    sender = WebhookSender(allow_private=True)
    d = Dispatcher(
        h.resources.sessionmaker,
        sender,
        h.resources.settings,
        metrics=plane_of(h).delivery.metrics,
        **options,
    )
    try:
        yield d
    finally:
        await d.close(0)
        await sender.aclose()


async def send_once(d: Dispatcher) -> None:
    await d.step()
    await d.drain()


async def scrape(h: JobsHarness) -> str:
    response = await h.public.get("/metrics")
    assert response.status_code == 200
    return response.text


async def test_every_label_value_is_exported_at_zero_before_any_delivery(
    h: JobsHarness,
) -> None:
    text = await scrape(h)
    for outcome in OUTCOMES:
        assert f'gateway_webhook_deliveries_total{{audience="public",outcome="{outcome}"}}' in (
            text
        )
    for reason in DISABLE_REASONS:
        assert f'reason="{reason}"' in text
    for name in (
        "gateway_webhook_fanout_total",
        "gateway_webhook_outbox_pending",
        "gateway_webhook_outbox_oldest_seconds",
        "gateway_webhook_attempt_seconds_count",
    ):
        assert f"{name}{{" in text or f"{name} " in text, name


async def test_fanout_backlog_and_a_success_are_counted(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    await endpoint(h, key, receiver.url("/ok"), ["job.completed"])
    before = await scrape(h)
    await completed_job(h, key)
    delivery = plane_of(h).delivery
    await delivery.fanout.drain()

    # One delivery created, waiting: the backlog shows it (due, so it has an age).
    await sql(
        h,
        "UPDATE webhook_deliveries SET next_attempt_at = now() - interval '1 hour'"
        " WHERE state = 'pending'",
    )
    await delivery.refresh_backlog()
    waiting = await scrape(h)
    assert metric_value(waiting, "gateway_webhook_fanout_total") == (
        metric_value(before, "gateway_webhook_fanout_total") + 1
    )
    assert metric_value(waiting, "gateway_webhook_outbox_pending") == 1
    assert metric_value(waiting, "gateway_webhook_outbox_oldest_seconds") >= 3600

    async with exported_dispatcher(h) as d:
        await send_once(d)
    await delivery.refresh_backlog()
    sent = await scrape(h)
    assert metric_value(sent, "gateway_webhook_deliveries_total", outcome="succeeded") == (
        metric_value(before, "gateway_webhook_deliveries_total", outcome="succeeded") + 1
    )
    assert metric_value(sent, "gateway_webhook_attempt_seconds_count") == (
        metric_value(before, "gateway_webhook_attempt_seconds_count") + 1
    )
    assert metric_value(sent, "gateway_webhook_outbox_pending") == 0
    assert metric_value(sent, "gateway_webhook_outbox_oldest_seconds") == 0


async def test_a_failure_is_failed_retry_then_dead_when_no_retries_are_left(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    await endpoint(h, key, receiver.url("/fail"), ["job.completed"])
    before = await scrape(h)
    await completed_job(h, key)
    await plane_of(h).delivery.fanout.drain()
    # Two attempts in all: the first is retried (at once), the second is the last.
    async with exported_dispatcher(h, retry_delays_s=NO_WAIT[:2]) as d:
        await send_once(d)
        await send_once(d)
    after = await scrape(h)
    for outcome in ("failed_retry", "dead"):
        assert metric_value(after, "gateway_webhook_deliveries_total", outcome=outcome) == (
            metric_value(before, "gateway_webhook_deliveries_total", outcome=outcome) + 1
        ), outcome
    assert len(receiver.received) == 2


async def test_a_410_is_gone_and_disables_the_endpoint(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    await endpoint(h, key, receiver.url("/gone"), ["job.completed"])
    before = await scrape(h)
    await completed_job(h, key)
    await plane_of(h).delivery.fanout.drain()
    async with exported_dispatcher(h) as d:
        await send_once(d)
    after = await scrape(h)
    assert metric_value(after, "gateway_webhook_deliveries_total", outcome="gone") == (
        metric_value(before, "gateway_webhook_deliveries_total", outcome="gone") + 1
    )
    assert metric_value(after, "gateway_webhook_endpoints_disabled_total", reason="gone") == (
        metric_value(before, "gateway_webhook_endpoints_disabled_total", reason="gone") + 1
    )


async def test_an_endpoint_failing_too_long_is_counted_disabled_failing(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/fail"), ["job.completed"])
    days = h.resources.settings.webhook_disable_after_s // 86_400 + 1
    await sql(
        h,
        "UPDATE webhook_endpoints SET failing_since = now() - make_interval(days => :d)"
        " WHERE id = :id",
        d=days,
        id=wh["id"],
    )
    before = await scrape(h)
    await completed_job(h, key)
    await plane_of(h).delivery.fanout.drain()
    async with exported_dispatcher(h) as d:
        await send_once(d)
    after = await scrape(h)
    name = "gateway_webhook_endpoints_disabled_total"
    assert metric_value(after, name, reason="failing") == (
        metric_value(before, name, reason="failing") + 1
    )
    assert metric_value(after, "gateway_webhook_deliveries_total", outcome="failed_retry") == (
        metric_value(before, "gateway_webhook_deliveries_total", outcome="failed_retry") + 1
    )


async def test_the_running_loop_counts_and_reads_the_backlog_on_its_own(
    settings: Settings, receiver: WebhookReceiver
) -> None:
    # The app's own loop: nobody drives a step or a backlog read.
    overrides = {**OVERRIDES, "webhook_dispatch_interval_s": 0.05}
    async with jobs_harness(settings, **overrides) as live:
        key = await live.key()
        await endpoint(live, key, receiver.url("/ok"), ["job.completed"])
        # Held by the receiver until it stops: its delivery stays `sending`.
        await endpoint(live, key, receiver.url("/slow"), ["job.completed"])
        before = await scrape(live)
        await completed_job(live, key)

        async def counted() -> bool:
            text = await scrape(live)
            return (
                metric_value(text, "gateway_webhook_deliveries_total", outcome="succeeded")
                > metric_value(before, "gateway_webhook_deliveries_total", outcome="succeeded")
                and metric_value(text, "gateway_webhook_outbox_pending") == 1
            )

        await wait_until(counted, what="the success counted and the held send in the backlog")
        after = await scrape(live)
        assert metric_value(after, "gateway_webhook_fanout_total") == (
            metric_value(before, "gateway_webhook_fanout_total") + 2
        )
        # Being sent is not waiting: nothing is due.
        assert metric_value(after, "gateway_webhook_outbox_oldest_seconds") == 0
