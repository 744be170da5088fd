"""Metrics of live streams (public port's registry); every label value exported at 0.

`kind` is `sse` or `ws`. Lag is from the event's commit time (`at`, written in the
transaction that made the change) to the moment its frame was handed to the connection:
it includes the publish, the feed read and any wait in the connection's outbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.kit.memo import PerOwner

KINDS = ("sse", "ws")
REFUSALS = ("too_many_followers", "too_many_streams", "too_many_subscriptions", "ticket")
ENDINGS = ("finished", "client", "slow", "shutdown", "refused", "error")
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class StreamMetrics:
    """The live-streams series in one registry."""

    open: Gauge
    subscriptions: Gauge
    events: Counter
    resumes: Counter
    resyncs: Counter
    slow_drops: Counter
    ended: Counter
    refused: Counter
    lag: Histogram
    feed_failures: Counter


def _build(registry: CollectorRegistry) -> StreamMetrics:
    metrics = StreamMetrics(
        open=Gauge(
            "gateway_streams_open",
            "Live stream connections open in this process, by kind (sse, ws).",
            ["kind"],
            registry=registry,
        ),
        subscriptions=Gauge(
            "gateway_stream_subscriptions",
            "Jobs followed in this process (one per SSE stream, one per WebSocket subscription).",
            registry=registry,
        ),
        events=Counter(
            "gateway_stream_events_sent_total",
            "Job events sent to live stream clients, by kind (snapshots and resyncs included).",
            ["kind"],
            registry=registry,
        ),
        resumes=Counter(
            "gateway_stream_resumes_total",
            "Streams opened with a last event id (a reconnect), by kind.",
            ["kind"],
            registry=registry,
        ),
        resyncs=Counter(
            "gateway_stream_resyncs_total",
            "Resumes whose events were no longer in Redis: sent the full state instead.",
            ["kind"],
            registry=registry,
        ),
        slow_drops=Counter(
            "gateway_stream_slow_drops_total",
            "Connections dropped because the client stopped reading (its outbox filled).",
            ["kind"],
            registry=registry,
        ),
        ended=Counter(
            "gateway_streams_ended_total",
            "Live stream connections that ended, by kind and why (finished, client, "
            "slow, shutdown, refused (never streamed, or a WebSocket the server closed), "
            "error).",
            ["kind", "reason"],
            registry=registry,
        ),
        refused=Counter(
            "gateway_stream_refusals_total",
            "Streams or subscriptions refused, by kind and reason (caps, tickets).",
            ["kind", "reason"],
            registry=registry,
        ),
        lag=Histogram(
            "gateway_stream_event_lag_seconds",
            "From an event's commit to its frame being sent to a client, by kind.",
            ["kind"],
            buckets=_LAG_BUCKETS,
            registry=registry,
        ),
        feed_failures=Counter(
            "gateway_stream_feed_read_failures_total",
            "Failed reads of the job-event feed by this process's reader (Redis errors).",
            registry=registry,
        ),
    )
    for kind in KINDS:
        for series in (metrics.open, metrics.events, metrics.resumes, metrics.resyncs):
            series.labels(kind)
        metrics.slow_drops.labels(kind)
        metrics.lag.labels(kind)
        for reason in ENDINGS:
            metrics.ended.labels(kind, reason)
        for reason in REFUSALS:
            metrics.refused.labels(kind, reason)
    return metrics


stream_metrics: PerOwner[CollectorRegistry, StreamMetrics] = PerOwner(_build)
