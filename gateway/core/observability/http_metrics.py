"""Per-request HTTP metrics, recorded by the request-context middleware.

The series keep prometheus-fastapi-instrumentator's names and labels
(`http_requests_total{handler,method,status}`, `http_request_duration_seconds{handler,method}`)
so its dashboards and habits apply, but they are recorded here instead of by its
middleware: measured on the foundation benchmark, that middleware cost about a third of
the gateway's per-request CPU (it builds a Request and a Response object and re-matches the
route for every request). Here the route template comes from `scope["route"]`, which
the router already resolved.

The counts are plain integers exported by a collector at scrape time, not
prometheus_client `Counter`/`Histogram` children: those take a lock per increment and
walk the bucket list in Python, which on a cache hit cost as much as the limiter's
headers. Only the event loop's thread records and scrapes (the middleware and the async
`/metrics` route), so the lock bought nothing.

Every route template the app serves is declared at build time (`declare`), so its
latency histogram is exported at 0 before its first request: a quiet port's latency
panels show zeros instead of "No data". Request counts are not: their `status` is only
known once a request finishes, and inventing one would be a lie.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.core.observability.buckets import cumulative, le_labels

# Fine enough to read p50/p95/p99 of a gateway that answers in milliseconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
UNMATCHED = "none"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LE = le_labels(LATENCY_BUCKETS)
_REQUESTS = ("http_requests_total", "HTTP requests by route template, method and status code.")
_DURATION = ("http_request_duration_seconds", "HTTP request latency by route template and method.")


class _Series:
    """One (route template, method): latency bucket counts, their sum, counts by status."""

    __slots__ = ("buckets", "statuses", "sum")

    def __init__(self, buckets: int) -> None:
        self.buckets = [0] * (buckets + 1)  # the last one is +Inf
        self.sum = 0.0
        self.statuses: dict[int, int] = {}


class HttpMetrics(Collector):
    """Request count and latency by route template, method and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._bounds = LATENCY_BUCKETS
        self._series: dict[tuple[str, str], _Series] = {}
        registry.register(self)

    def declare(self, handler: str, method: str) -> None:
        """Export this route template and method's latency at 0 until its first request."""
        if method not in _METHODS:
            method = "OTHER"
        self._series.setdefault((handler, method), _Series(len(self._bounds)))

    def observe(self, handler: str, method: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        if method not in _METHODS:
            method = "OTHER"  # clients choose methods; labels must stay bounded
        series = self._series.get((handler, method))
        if series is None:
            series = self._series[(handler, method)] = _Series(len(self._bounds))
        # bisect_left: the first bound >= seconds, i.e. Prometheus's `le` bucket.
        series.buckets[bisect_left(self._bounds, seconds)] += 1
        series.sum += seconds
        statuses = series.statuses
        statuses[status] = statuses.get(status, 0) + 1

    def describe(self) -> Iterator[Metric]:
        # Names only: lets an auto-describing registry check for duplicates without
        # collecting.
        yield CounterMetricFamily(*_REQUESTS, labels=["handler", "method", "status"])
        yield HistogramMetricFamily(*_DURATION, labels=["handler", "method"])

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(*_REQUESTS, labels=["handler", "method", "status"])
        duration = HistogramMetricFamily(*_DURATION, labels=["handler", "method"])
        for (handler, method), series in list(self._series.items()):
            for status, count in sorted(series.statuses.items()):
                requests.add_metric([handler, method, str(status)], count)
            duration.add_metric([handler, method], cumulative(_LE, series.buckets), series.sum)
        yield requests
        yield duration
