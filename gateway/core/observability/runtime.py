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

`ProcessMonitor` is started once per process by `gateway serve` (not by the app
lifespans: there are three apps per process, and three samplers would add load while
measuring it). Starting a second monitor on the same `MetricsHub` raises.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from types import TracebackType
from typing import Self

import structlog
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from gateway.core.database import ping as ping_database
from gateway.core.observability.gc_pauses import GcPauses

log = structlog.get_logger("gateway.runtime")

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


class LoopLagSampler:
    """Measures how late a sleeping task wakes up; keeps a short window of samples."""

    def __init__(self, interval_s: float = 0.5, window: int = 20) -> None:
        self.interval_s = interval_s
        self._samples: collections.deque[float] = collections.deque([0.0], maxlen=window)

    def worst(self) -> float:
        """The largest lag in the window, in seconds."""
        return max(self._samples)

    async def run(self) -> None:
        """Sample forever (until cancelled)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval_s)
            self._samples.append(max(0.0, loop.time() - started - self.interval_s))


Probe = Callable[[], Awaitable[object]]


class ProcessMonitor:
    """Runs the loop-lag sampler and the dependency prober, and measures GC pauses, for
    one process."""

    def __init__(
        self,
        metrics: RuntimeMetrics,
        *,
        redis: Redis,
        engine: AsyncEngine,
        probe_timeout_s: float,
        probe_interval_s: float = 5.0,
        lag_interval_s: float = 0.5,
    ) -> None:
        self.metrics = metrics
        self.probes: dict[str, Probe] = {
            "redis": redis.ping,
            "database": lambda: ping_database(engine),
        }
        self.probe_timeout_s = probe_timeout_s
        self.probe_interval_s = probe_interval_s
        self.sampler = LoopLagSampler(lag_interval_s)
        self._tasks: list[asyncio.Task[None]] = []

    async def probe_once(self) -> dict[str, bool]:
        """Probe every dependency concurrently and publish the results."""
        names = list(self.probes)
        results = await asyncio.gather(*(self._probe(self.probes[n]) for n in names))
        outcome = dict(zip(names, results, strict=True))
        for name, ok in outcome.items():
            self.metrics.dependency_up.labels(name).set(1 if ok else 0)
        return outcome

    async def _probe(self, probe: Probe) -> bool:
        try:
            async with asyncio.timeout(self.probe_timeout_s):
                await probe()
        except Exception:  # any failure, including the timeout, means "down"
            return False
        return True

    async def _probe_forever(self) -> None:
        previous: dict[str, bool] = {}
        while True:
            started = time.monotonic()
            outcome = await self.probe_once()
            for name, ok in outcome.items():
                if previous.get(name, True) != ok:
                    log.warning("dependency_state_changed", dependency=name, up=ok)
            previous = outcome
            await asyncio.sleep(max(0.0, self.probe_interval_s - (time.monotonic() - started)))

    async def __aenter__(self) -> Self:
        if self.metrics.monitor_started:
            raise RuntimeError("a ProcessMonitor is already running for this MetricsHub")
        self.metrics.monitor_started = True
        self.metrics.event_loop_lag.set_function(self.sampler.worst)
        self.metrics.gc_pauses.install()
        # The first probe runs before the servers accept traffic, so the gauge exists
        # (and is truthful) from the first scrape on.
        await self.probe_once()
        self._tasks = [
            asyncio.create_task(self.sampler.run(), name="loop-lag-sampler"),
            asyncio.create_task(self._probe_forever(), name="dependency-prober"),
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.metrics.gc_pauses.uninstall()
        self.metrics.monitor_started = False
