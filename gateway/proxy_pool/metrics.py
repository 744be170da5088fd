"""Proxy pool metrics, one set per audience registry.

Counters go to the registry of the port that served the request. `gateway_proxies` is
computed from Redis by each internal app's upkeep loop: the pool is shared, so the parcel
and party ports (and every replica) export the same values; aggregate with
`max without (instance, audience)`, never `sum`.

As in `gateway.work.metrics`, platforms are declared when first seen (the upkeep loop's
tick reports every platform the pool has state for): `platforms_seen` exports each of
their counters, every outcome, at 0, so a quiet pool shows zeros rather than no data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.kit.memo import PerOwner

# Every `outcome` the pool counts (service.py increments no other).
LEASE_OUTCOMES = ("leased", "exhausted")
RELEASE_OUTCOMES = ("ok", "banned", "error")


@dataclass(frozen=True)
class ProxyMetrics:
    """The proxy pool's series in one registry."""

    leases: Counter
    releases: Counter
    bans: Counter
    holder_refusals: Counter
    proxies: Gauge
    _seen: set[str] = field(default_factory=set)

    def platforms_seen(self, platforms: Iterable[str]) -> None:
        """Export every counter of these platforms, at 0 until counted."""
        for platform in platforms:
            if platform in self._seen:
                continue
            self._seen.add(platform)
            self.bans.labels(platform)
            for outcome in LEASE_OUTCOMES:
                self.leases.labels(platform, outcome)
            for outcome in RELEASE_OUTCOMES:
                self.releases.labels(platform, outcome)


def _build(registry: CollectorRegistry) -> ProxyMetrics:
    metrics = ProxyMetrics(
        leases=Counter(
            "gateway_proxy_leases_total",
            "Proxy lease requests by outcome (leased, exhausted).",
            ["platform", "outcome"],
            registry=registry,
        ),
        releases=Counter(
            "gateway_proxy_releases_total",
            "Proxy releases by reported outcome (ok, banned, error).",
            ["platform", "outcome"],
            registry=registry,
        ),
        bans=Counter(
            "gateway_proxy_bans_total",
            "Proxies put into a per-platform ban cool-down.",
            ["platform"],
            registry=registry,
        ),
        holder_refusals=Counter(
            "gateway_proxy_holder_refusals_total",
            "Proxy releases and rotations refused because another token or worker id holds "
            "the lease, by operation (release, rotate).",
            ["operation"],
            registry=registry,
        ),
        proxies=Gauge(
            "gateway_proxies",
            "Proxies per platform and state (available, leased, cooling); cluster-wide, "
            "aggregate with max without (instance, audience).",
            ["platform", "state"],
            registry=registry,
        ),
    )
    for operation in ("release", "rotate"):  # known up front: exported at 0
        metrics.holder_refusals.labels(operation)
    return metrics


# The pool's metrics in a registry, created on first use.
proxy_metrics: PerOwner[CollectorRegistry, ProxyMetrics] = PerOwner(_build)
