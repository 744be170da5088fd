"""Proxy pool metrics, one set per audience registry.

Counters go to the registry of the port that served the request. `gateway_proxies` is
computed from Redis by each internal app's upkeep loop: the pool is shared, so the parcel
and party ports (and every replica) export the same values; aggregate with
`max without (instance, audience)`, never `sum`.
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True)
class ProxyMetrics:
    """The proxy pool's series in one registry."""

    leases: Counter
    releases: Counter
    bans: Counter
    proxies: Gauge


_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, ProxyMetrics] = WeakKeyDictionary()


def proxy_metrics(registry: CollectorRegistry) -> ProxyMetrics:
    """The pool's metrics in `registry`, created on first use."""
    found = _BY_REGISTRY.get(registry)
    if found is None:
        found = ProxyMetrics(
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
            proxies=Gauge(
                "gateway_proxies",
                "Proxies per platform and state (available, leased, cooling); cluster-wide, "
                "aggregate with max without (instance, audience).",
                ["platform", "state"],
                registry=registry,
            ),
        )
        _BY_REGISTRY[registry] = found
    return found
