"""Process metrics: event-loop lag, pool usage and dependency health.

Three design choices keep these off the request path and keep `/metrics` fast:

* **Pool usage is read at scrape time.** `PoolCollector` looks at the shared Redis pool
  and SQLAlchemy pool when Prometheus scrapes; nothing is counted per request.
* **Dependency health is probed in the background, not at scrape time.** A scrape-time
  probe would make every `/metrics` call wait up to the probe timeout while a backend
  hangs (three ports, so three waits per scrape interval, per Prometheus server), and
  a scraper's own timeout would then drop *all* series of the port exactly when they
  matter most. `ProcessMonitor` pings Redis and PostgreSQL every `interval_s`, each
  ping bounded by `READY_TIMEOUT_S`, and `/metrics` only reads the last result. The
  price is staleness of at most one interval plus one timeout.
* **Event-loop lag is sampled by one task per process.** It sleeps a fixed interval
  and records how late it woke up; the gauge reports the worst lag over a short
  window, so a stall between two scrapes is not lost.

`gateway/process/monitor.py` runs the sampler and the probes, once per process (not by the app
lifespans: there are three apps per process, and three samplers would add load while
measuring it). Starting a second monitor on the same `MetricsHub` raises.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from gateway.core.observability.gc_pauses import GcPauses

DEPENDENCIES = ("redis", "database")


class RuntimeMetrics:
    """The process-wide gauges the monitor writes; created once per `MetricsHub`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.event_loop_lag = Gauge(
            "gateway_event_loop_lag_seconds",
            "Worst event-loop lag (late wake-up of a timer) over the last sampling window.",
            registry=registry,
        )
        self.dependency_up = Gauge(
            "gateway_dependency_up",
            "1 if the last background probe reached the dependency, 0 if it failed.",
            ["dependency"],
            registry=registry,
        )
        self.gc_pauses = GcPauses(registry)
        self.monitor_started = False


class PoolCollector(Collector):
    """Reads connection counts from the shared pools when Prometheus scrapes."""

    def __init__(self, redis: Redis, engine: AsyncEngine) -> None:
        self._redis = redis
        self._engine = engine

    def collect(self) -> Iterator[Metric]:
        redis_family = GaugeMetricFamily(
            "gateway_redis_pool_connections",
            "Connections of the shared Redis pool by state.",
            labels=["state"],
        )
        pool = self._redis.connection_pool
        # redis-py has no public accessor for these counts (4.x to 8.x keep these names);
        # if a release renames them the family is exported empty rather than failing.
        in_use = getattr(pool, "_in_use_connections", None)
        idle = getattr(pool, "_available_connections", None)
        if in_use is not None and idle is not None:
            redis_family.add_metric(["in_use"], len(in_use))
            redis_family.add_metric(["idle"], len(idle))
        yield redis_family

        db_family = GaugeMetricFamily(
            "gateway_db_pool_connections",
            "Connections of the shared SQLAlchemy pool by state "
            "(overflow: connections open beyond the pool size).",
            labels=["state"],
        )
        db_pool = self._engine.pool
        if isinstance(db_pool, QueuePool):  # the engine's pool unless a test swaps it
            db_family.add_metric(["checked_out"], db_pool.checkedout())
            db_family.add_metric(["idle"], db_pool.checkedin())
            # QueuePool counts overflow from -pool_size upwards; only positive values are
            # connections beyond the pool.
            db_family.add_metric(["overflow"], max(0, db_pool.overflow()))
        yield db_family

    def describe(self) -> Iterator[Metric]:
        # Lets `auto_describe` registries check for clashes without touching the pools.
        yield GaugeMetricFamily("gateway_redis_pool_connections", "", labels=["state"])
        yield GaugeMetricFamily("gateway_db_pool_connections", "", labels=["state"])
