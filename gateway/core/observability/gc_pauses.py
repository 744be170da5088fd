"""Garbage-collector pauses: measured as a histogram, and made short by freezing the
start-up heap.

CPython's cyclic collector stops the whole process while it runs, so a collection is a
pause of every request on every port. Measured under saturation on the public port
(`bench/public_plane.py`, before this module): a full (generation 2) collection walked
the ~157,000 objects left by start-up (imports, apps, pools, firebase-admin) and took
up to 112 ms, seven times per run, and the cache-hit p99 was 86-144 ms against a p50 of
8-10 ms. Two settings fix it:

* `settle_startup_heap` collects once and then `gc.freeze()`s everything alive: start-up
  objects live as long as the process, and frozen objects are never walked again. A full
  collection then walks only what requests left behind (thousands of objects, not
  157,000). The price: garbage cycles among start-up objects that die later are never
  freed (start-up builds long-lived objects only).
* It raises the generation-0 threshold from 700 to `GEN0_THRESHOLD`. With 64 requests in
  flight, a young collection every 700 allocations found most of their objects still
  alive and promoted them to older generations, where they died later and kept full
  collections coming. Ten times fewer young collections promote ten times fewer of them;
  the cost is at most `GEN0_THRESHOLD` cyclic objects waiting a little longer.

Same benchmark after: full collections only at start-up, saturation p99 11-17 ms. The
histogram lets an operator tie a p99 spike to a pause (`gateway_gc_pause_seconds`).
"""

from __future__ import annotations

import bisect
import gc
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway.core.observability.buckets import cumulative, le_labels

GEN0_THRESHOLD = 7000
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
GENERATIONS = (0, 1, 2)
_LE = le_labels(BUCKETS)


def settle_startup_heap() -> None:
    """Collect once, freeze what survives, and raise the young-collection threshold."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


class GcPauses(Collector):
    """`gateway_gc_pause_seconds{generation}`: how long each collection stopped the
    process; `gateway_gc_frozen_objects`: what `settle_startup_heap` took off its walks.

    The `gc.callbacks` hook only counts into plain lists; the histogram is built when
    Prometheus scrapes. Calling prometheus_client from the hook could deadlock: a
    collection can start inside any allocation, including one made while a metric
    holds its (non-reentrant) lock.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        # counts[g][i]: pauses of generation g in bucket i (the last one is +Inf).
        self._counts = [[0] * (len(BUCKETS) + 1) for _ in GENERATIONS]
        self._sums = [0.0 for _ in GENERATIONS]
        self._started = 0.0
        registry.register(self)

    def install(self) -> None:
        """Start measuring (once per process: `ProcessMonitor` does it)."""
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        """Stop measuring."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        self._counts[generation][bisect.bisect_left(BUCKETS, pause)] += 1
        self._sums[generation] += pause

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "gateway_gc_pause_seconds",
            "Time the process stood still in one garbage collection, by generation.",
            labels=["generation"],
        )
        for generation in GENERATIONS:
            buckets = cumulative(_LE, self._counts[generation])
            family.add_metric([str(generation)], buckets, self._sums[generation])
        yield family
        yield GaugeMetricFamily(
            "gateway_gc_frozen_objects",
            "Objects frozen at start-up (never walked by the collector).",
            value=gc.get_freeze_count(),
        )

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily("gateway_gc_pause_seconds", "", labels=["generation"])
        yield GaugeMetricFamily("gateway_gc_frozen_objects", "")
