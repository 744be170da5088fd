"""Histograms kept as plain bucket counts and turned into Prometheus's cumulative
buckets at scrape time (HTTP latency, GC pauses).

Recording is one `bisect_left` and two additions, done by the caller where it counts
(no lock, no method call on the request path); these helpers only shape the export.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.utils import floatToGoString


def le_labels(bounds: Sequence[float]) -> tuple[str, ...]:
    """The `le` label of each bucket as prometheus_client writes it (`0.005`, `1.0`),
    with `+Inf` last."""
    return tuple(floatToGoString(b) for b in (*bounds, float("inf")))  # type: ignore[no-untyped-call]


def cumulative(le: Sequence[str], counts: Sequence[int]) -> list[tuple[str, float]]:
    """(le, observations at or below it) for per-bucket counts (`counts[i]`: values in
    bucket i, the last one +Inf)."""
    total, buckets = 0, []
    for label, count in zip(le, counts, strict=True):
        total += count
        buckets.append((label, float(total)))
    return buckets
