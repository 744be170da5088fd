"""GC pauses as a histogram; the start-up heap frozen and off the collector's walks."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.core.observability.gc_pauses import GEN0_THRESHOLD, GcPauses, settle_startup_heap


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def pauses() -> Iterator[tuple[GcPauses, CollectorRegistry]]:
    registry = CollectorRegistry()
    recorder = GcPauses(registry)
    recorder.install()
    try:
        yield recorder, registry
    finally:
        recorder.uninstall()


def test_a_collection_is_counted_in_its_generation_and_bucket(
    pauses: tuple[GcPauses, CollectorRegistry],
) -> None:
    recorder, registry = pauses
    before = scrape(registry)
    gc.collect(1)
    gc.collect(2)
    after = scrape(registry)

    def count(generation: str) -> float:
        key = ("gateway_gc_pause_seconds_count", (("generation", generation),))
        return after[key] - before[key]

    assert count("1") == 1
    assert count("2") == 1
    total = after[("gateway_gc_pause_seconds_sum", (("generation", "2"),))]
    assert 0 < total < 5
    inf = after[("gateway_gc_pause_seconds_bucket", (("generation", "2"), ("le", "+Inf")))]
    assert inf == after[("gateway_gc_pause_seconds_count", (("generation", "2"),))]

    recorder.uninstall()
    gc.collect(2)
    stopped = scrape(registry)
    key = ("gateway_gc_pause_seconds_count", (("generation", "2"),))
    assert stopped[key] == after[key]


def test_install_twice_counts_once(pauses: tuple[GcPauses, CollectorRegistry]) -> None:
    recorder, registry = pauses
    recorder.install()
    key = ("gateway_gc_pause_seconds_count", (("generation", "2"),))
    before = scrape(registry)[key]
    gc.collect()
    assert scrape(registry)[key] == before + 1


def test_settle_freezes_what_is_alive_and_raises_the_young_threshold(
    pauses: tuple[GcPauses, CollectorRegistry],
) -> None:
    _, registry = pauses
    keep_probe = [0]
    threshold = gc.get_threshold()
    assert any(o is keep_probe for o in gc.get_objects())
    keep = [[i] for i in range(1000)]  # lists are always tracked (small dicts may not be)
    try:
        settle_startup_heap()
        frozen = scrape(registry)[("gateway_gc_frozen_objects", ())]
        assert frozen >= len(keep)
        assert gc.get_freeze_count() == frozen
        assert gc.get_threshold() == (GEN0_THRESHOLD, threshold[1], threshold[2])
        # Frozen objects are off the walks: they are in no generation any more.
        assert not any(o is keep[0] or o is keep_probe for o in gc.get_objects())
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
    assert any(o is keep[0] for o in gc.get_objects())
