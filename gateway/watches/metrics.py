"""Metrics of parcel watches (in the registry of the port that counts them).

- `gateway_parcel_changes_total`: `parcel.changed` events recorded by the results path
  (parcel port), one per watch and changed parcel, counted once the transaction committed;
- `gateway_parcel_change_publish_failures_total`: changes whose live publish failed
  (Redis down): webhooks still get them (PostgreSQL outbox), live sockets miss them and
  the watch's changes log has them.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from gateway.kit.memo import PerOwner


@dataclass(frozen=True)
class WatchMetrics:
    """The watch series in one registry."""

    changes: Counter
    publish_failures: Counter


def _build(registry: CollectorRegistry) -> WatchMetrics:
    return WatchMetrics(
        changes=Counter(
            "gateway_parcel_changes_total",
            "parcel.changed events recorded (one per watch and changed parcel).",
            registry=registry,
        ),
        publish_failures=Counter(
            "gateway_parcel_change_publish_failures_total",
            "parcel.changed events whose live publish to Redis failed (webhooks and the "
            "changes log still have them).",
            registry=registry,
        ),
    )


watch_metrics: PerOwner[CollectorRegistry, WatchMetrics] = PerOwner(_build)


def unexported() -> WatchMetrics:
    """Metrics in a registry of their own (tests, tools): counted, never scraped."""
    return _build(CollectorRegistry())
