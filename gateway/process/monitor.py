"""The process monitor: event-loop lag sampling and background dependency probes.

`ProcessMonitor` is started once per process by `gateway serve` (not by the app
lifespans: there are three apps per process, and three samplers would add load while
measuring it). Starting a second monitor on the same `MetricsHub` raises. See
`gateway/core/observability/runtime.py` for why probes run in the background and
`/metrics` only reads their last result.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.core.database import ping as ping_database
from gateway.core.observability.runtime import RuntimeMetrics
from gateway.core.readiness import bounded
from gateway.kit.periodic import PeriodicLoop

log = structlog.get_logger("gateway.runtime")


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
        self._sampling: asyncio.Task[None] | None = None
        # Empty at start: a dependency already down when the process starts is logged too.
        self._previous: dict[str, bool] = {}
        self._prober = PeriodicLoop("dependency-prober", self._probe_and_log, probe_interval_s)

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
            # Bounded like /ready: a hung backend's cleanup must not stall the prober.
            await bounded(probe, self.probe_timeout_s)
        except Exception:  # any failure, including the timeout, means "down"
            return False
        return True

    async def _probe_and_log(self) -> None:
        outcome = await self.probe_once()
        for name, ok in outcome.items():
            if self._previous.get(name, True) != ok:
                log.warning("dependency_state_changed", dependency=name, up=ok)
        self._previous = outcome

    async def __aenter__(self) -> Self:
        if self.metrics.monitor_started:
            raise RuntimeError("a ProcessMonitor is already running for this MetricsHub")
        self.metrics.monitor_started = True
        self.metrics.event_loop_lag.set_function(self.sampler.worst)
        self.metrics.gc_pauses.install()
        # The first probe runs before the servers accept traffic, so the gauge exists
        # (and is truthful) from the first scrape on.
        await self.probe_once()
        self._sampling = asyncio.create_task(self.sampler.run(), name="loop-lag-sampler")
        self._prober.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._prober.stop()
        sampling, self._sampling = self._sampling, None
        if sampling is not None:
            sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampling
        self.metrics.gc_pauses.uninstall()
        self.metrics.monitor_started = False
