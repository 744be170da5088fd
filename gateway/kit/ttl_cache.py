"""A bounded in-process cache whose entries expire at a time given when they are stored.

Every per-process cache of the gateway (verified API keys, Firebase claims and account
status, recorded users, worker tokens, blocked client addresses) is one of these, with
one eviction rule: when full, the entry stored longest ago goes first (insertion order;
a read does not reorder, so a hit costs one dict lookup and one comparison, which the
public hot path needs). Expired entries are dropped when read or when their slot is
needed. `peek` returns an expired entry too, for callers that serve stale data while a
backend is down (worker tokens during a PostgreSQL outage).

The clock is the caller's: monotonic for "for N seconds", wall time for an absolute
expiry such as a token's `exp`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """At most `max_entries` values, each fresh until its own deadline on `clock`."""

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be >= 0")
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[K, tuple[V, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The fresh value of `key`, or None (absent or expired)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] > self.clock():
            return entry[0]
        del self._entries[key]
        return None

    def peek(self, key: K) -> tuple[V, bool] | None:
        """The value of `key` and whether it is still fresh, expired or not; None if absent."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        return entry[0], entry[1] > self.clock()

    def put_until(self, key: K, value: V, until: float) -> None:
        """Store `value` until the clock reads `until` (nothing when already past)."""
        if self.max_entries == 0 or until <= self.clock():
            return
        entries = self._entries
        entries.pop(key, None)  # re-inserting moves it to the young end
        while len(entries) >= self.max_entries:
            del entries[next(iter(entries))]
        entries[key] = (value, until)

    def put(self, key: K, value: V, ttl_s: float) -> None:
        """Store `value` for `ttl_s` seconds of the clock (nothing when `ttl_s` <= 0)."""
        if ttl_s > 0:
            self.put_until(key, value, self.clock() + ttl_s)

    def pop(self, key: K) -> None:
        """Forget `key`."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()
