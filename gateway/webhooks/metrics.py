"""Metrics of webhook delivery (public port's registry); every label value exported at 0.

Counted where the dispatcher and the fan-out decide, after their transaction commits (a
rolled-back step counts nothing):
- `outcome` of an attempt: `succeeded` (2xx), `failed_retry` (failed, another attempt is
  scheduled), `dead` (failed, no retries left), `gone` (410: the delivery is failed and
  its endpoint disabled);
- endpoints disabled by delivery, by `reason`: `gone` (410) or `failing` (no success for
  WEBHOOK_DISABLE_AFTER_S); an owner's PATCH enabled=false is not counted.

The outbox gauges describe the shared database, so every replica exports the same value
(aggregate with `max`, never sum); the delivery loop refreshes them at most every
`OUTBOX_REFRESH_S`.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.kit.memo import PerOwner

OUTCOMES = ("succeeded", "failed_retry", "dead", "gone")
DISABLE_REASONS = ("gone", "failing")
# Seconds between two reads of the outbox's backlog by one replica (a cheap query on the
# partial indexes, but every replica runs it).
OUTBOX_REFRESH_S = 5.0
# Send latency: a healthy local receiver answers in milliseconds, WEBHOOK_TIMEOUT_S is 10 s.
_ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class WebhookMetrics:
    """The webhook series in one registry."""

    deliveries: Counter
    attempt_seconds: Histogram
    fanout: Counter
    outbox_pending: Gauge
    outbox_oldest: Gauge
    rate_delayed: Gauge
    disabled: Counter
    listening: Gauge


def _build(registry: CollectorRegistry) -> WebhookMetrics:
    metrics = WebhookMetrics(
        deliveries=Counter(
            "gateway_webhook_deliveries_total",
            "Webhook delivery attempts recorded, by outcome (succeeded, failed_retry, "
            "dead: no retries left, gone: 410 disabled the endpoint).",
            ["outcome"],
            registry=registry,
        ),
        attempt_seconds=Histogram(
            "gateway_webhook_attempt_seconds",
            "Time to send one webhook attempt and read its answer (errors and timeouts included).",
            buckets=_ATTEMPT_BUCKETS,
            registry=registry,
        ),
        fanout=Counter(
            "gateway_webhook_fanout_total",
            "Webhook deliveries created from events: job events, parcel changes and "
            "webhook.disabled (a coalesced progress is not a new one).",
            registry=registry,
        ),
        outbox_pending=Gauge(
            "gateway_webhook_outbox_pending",
            "Deliveries of enabled endpoints waiting or being sent (pending + sending), "
            "read from the database: the same on every replica.",
            registry=registry,
        ),
        outbox_oldest=Gauge(
            "gateway_webhook_outbox_oldest_seconds",
            "Age of the oldest due pending delivery of an enabled endpoint (0: none due), "
            "read from the database: the same on every replica.",
            registry=registry,
        ),
        rate_delayed=Gauge(
            "gateway_webhook_rate_delayed",
            "Due deliveries waiting for their endpoint's rate (webhook_events_per_s of its "
            "tier: its token bucket is empty), read from the database: the same on every "
            "replica. They are sent as tokens come back, never dropped.",
            registry=registry,
        ),
        disabled=Counter(
            "gateway_webhook_endpoints_disabled_total",
            "Webhook endpoints disabled by delivery, by reason (gone: 410, failing: no "
            "success for WEBHOOK_DISABLE_AFTER_S).",
            ["reason"],
            registry=registry,
        ),
        listening=Gauge(
            "gateway_webhook_listening",
            "1 while this replica's LISTEN connection for outbox inserts is up; 0: deliveries "
            "wait for the poll (WEBHOOK_DISPATCH_INTERVAL_S) until it reconnects.",
            registry=registry,
        ),
    )
    for outcome in OUTCOMES:
        metrics.deliveries.labels(outcome)
    for reason in DISABLE_REASONS:
        metrics.disabled.labels(reason)
    return metrics


webhook_metrics: PerOwner[CollectorRegistry, WebhookMetrics] = PerOwner(_build)


def unexported() -> WebhookMetrics:
    """Metrics in a registry of their own, for a dispatcher or fan-out built outside a
    plane (tests, tools): counted, never scraped."""
    return _build(CollectorRegistry())
