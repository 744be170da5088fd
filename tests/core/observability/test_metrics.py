"""Three apps in one process share no registry and every series names its audience."""

from __future__ import annotations

from prometheus_client import Counter

from gateway.core.audience import Audience
from gateway.core.observability.metrics import MetricsHub


def _samples(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_same_metric_name_in_each_audience_does_not_collide() -> None:
    hub = MetricsHub()
    counters = {
        a: Counter("gateway_demo_total", "demo", ["platform"], registry=hub.registry(a))
        for a in Audience
    }
    counters[Audience.PARCEL].labels("county-a").inc(3)
    counters[Audience.PARTY].labels("county-a").inc(5)
    parcel = hub.render(Audience.PARCEL).decode()
    party = hub.render(Audience.PARTY).decode()
    assert 'gateway_demo_total{audience="parcel",platform="county-a"} 3.0' in parcel
    assert 'gateway_demo_total{audience="party",platform="county-a"} 5.0' in party
    assert 'audience="party"' not in parcel


def test_process_series_carry_the_ports_audience() -> None:
    hub = MetricsHub(commit="abc123")
    for audience in Audience:
        text = hub.render(audience).decode()
        samples = _samples(text)
        assert any(s.startswith("process_") or s.startswith("python_") for s in samples)
        assert all(f'audience="{audience.value}"' in s for s in samples)
        assert 'commit="abc123"' in text


def test_two_hubs_in_one_process_do_not_collide() -> None:
    # Two gateways in one test process (or a restart of the apps) must not raise
    # "Duplicated timeseries" the way the global default registry would.
    MetricsHub()
    MetricsHub()
