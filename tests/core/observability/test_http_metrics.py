"""The hand-kept HTTP series expose exactly what prometheus_client's own would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.observability.http_metrics import LATENCY_BUCKETS, HttpMetrics

OBSERVED = [
    ("/v1/properties/{parcel_id}", "GET", 200, 0.0004),
    ("/v1/properties/{parcel_id}", "GET", 200, 0.001),  # exactly on a bound: le="0.001"
    ("/v1/properties/{parcel_id}", "GET", 304, 0.0031),
    ("/v1/properties/{parcel_id}", "GET", 429, 0.02),
    ("/v1/properties/search", "GET", 422, 0.7),
    ("/health", "HEAD", 200, 45.0),  # above the last bound: +Inf only
    ("/health", "BREW", 200, 0.002),  # unknown methods are one label value
]


def _samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_series_match_prometheus_clients_counter_and_histogram() -> None:
    ours = CollectorRegistry()
    metrics = HttpMetrics(ours)
    reference = CollectorRegistry()
    requests = Counter(
        "http_requests_total", "x", ["handler", "method", "status"], registry=reference
    )
    duration = Histogram(
        "http_request_duration_seconds",
        "x",
        ["handler", "method"],
        buckets=LATENCY_BUCKETS,
        registry=reference,
    )
    for handler, method, status, seconds in OBSERVED:
        metrics.observe(handler, method, status, seconds)
        label = method if method != "BREW" else "OTHER"
        requests.labels(handler, label, str(status)).inc()
        duration.labels(handler, label).observe(seconds)

    mine = _samples(ours)
    assert mine == _samples(reference)
    on_bound = frozenset(
        {"handler": "/v1/properties/{parcel_id}", "method": "GET", "le": "0.001"}.items()
    )
    assert mine[("http_request_duration_seconds_bucket", on_bound)] == 2
    slow = frozenset({"handler": "/health", "method": "HEAD", "le": "30.0"}.items())
    assert mine[("http_request_duration_seconds_bucket", slow)] == 0


def test_an_auto_describing_registry_refuses_a_second_copy() -> None:
    registry = CollectorRegistry(auto_describe=True)
    HttpMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        HttpMetrics(registry)
