"""`TtlCache`: per-entry deadlines on the caller's clock, oldest-stored evicted first."""

from __future__ import annotations

from gateway.kit.ttl_cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_at_their_own_deadline() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(10, clock=clock)
    cache.put("short", 1, 5)
    cache.put_until("long", 2, clock.now + 50)
    clock.now += 10
    assert cache.get("short") is None
    assert cache.get("long") == 2
    assert len(cache) == 1  # the expired entry was dropped when read


def test_peek_serves_stale_values_for_outages() -> None:
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(10, clock=clock)
    cache.put("token", "principal", 1)
    assert cache.peek("token") == ("principal", True)
    clock.now += 2
    assert cache.peek("token") == ("principal", False)
    assert cache.peek("other") is None


def test_full_cache_evicts_the_oldest_stored() -> None:
    cache: TtlCache[int, int] = TtlCache(3, clock=Clock())
    for key in range(3):
        cache.put(key, key, 60)
    assert cache.get(0) == 0  # a read does not make an entry younger
    cache.put(0, 0, 60)  # a rewrite does
    cache.put(3, 3, 60)
    assert [cache.get(k) for k in range(4)] == [0, None, 2, 3]
    assert len(cache) == 3


def test_nothing_is_stored_when_off_or_already_expired() -> None:
    clock = Clock()
    off: TtlCache[str, int] = TtlCache(0, clock=clock)
    off.put("a", 1, 60)
    assert off.get("a") is None
    cache: TtlCache[str, int] = TtlCache(5, clock=clock)
    cache.put("zero", 1, 0)
    cache.put_until("past", 1, clock.now - 1)
    assert len(cache) == 0
    cache.put("a", 1, 60)
    cache.pop("a")
    cache.pop("missing")
    assert cache.get("a") is None
