"""Prometheus registries: one per audience plus one for the process.

Three FastAPI apps live in one process, so the default global registry cannot be used:
three instrumentators on it raise "Duplicated timeseries". Each audience gets its own
`CollectorRegistry` (HTTP metrics and that audience's domain metrics); process-wide
series (runtime, pools, build info) live in a shared registry. A port's `/metrics`
exposes its audience registry plus the process registry, and every sample it writes
carries `audience="<that port's audience>"`, so a series always says where it came from.
Process series therefore appear once per port; dashboards aggregate them with
`max without (audience)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Info, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

import gateway
from gateway.core.audience import Audience
from gateway.core.observability.runtime import PoolCollector, RuntimeMetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _AudienceLabelled(Collector):
    """Re-exposes other registries with an `audience` label added to each sample."""

    def __init__(self, sources: Iterable[CollectorRegistry], audience: Audience) -> None:
        self._sources = list(sources)
        self._audience = audience.value

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            for family in source.collect():
                labelled = Metric(family.name, family.documentation, family.type, family.unit)
                labelled.samples = [
                    Sample(
                        s.name,
                        {"audience": self._audience, **s.labels},
                        s.value,
                        s.timestamp,
                        s.exemplar,
                    )
                    for s in family.samples
                ]
                yield labelled


class MetricsHub:
    """Owns the process registry and one registry per audience."""

    def __init__(self, commit: str = "unknown") -> None:
        from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

        self.process = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.process)
        PlatformCollector(registry=self.process)
        GCCollector(registry=self.process)
        build = Info("gateway_build", "Gateway build information.", registry=self.process)
        build.info({"version": gateway.__version__, "commit": commit})
        self.runtime = RuntimeMetrics(self.process)
        self._audiences = {a: CollectorRegistry(auto_describe=True) for a in Audience}
        self._exposition = {a: self._exposition_registry(a) for a in Audience}

    def registry(self, audience: Audience) -> CollectorRegistry:
        """The registry for series that belong to one audience's port."""
        return self._audiences[audience]

    def _exposition_registry(self, audience: Audience) -> CollectorRegistry:
        exposed = CollectorRegistry(auto_describe=False)
        exposed.register(_AudienceLabelled([self._audiences[audience], self.process], audience))
        return exposed

    def watch_pools(self, redis: Redis, engine: AsyncEngine) -> None:
        """Export the shared pools' connection counts (read at scrape time)."""
        self.process.register(PoolCollector(redis, engine))

    def render(self, audience: Audience) -> bytes:
        """Prometheus text exposition for one port."""
        return generate_latest(self._exposition[audience])
