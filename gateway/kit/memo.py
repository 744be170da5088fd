"""One object per owner, built on first use and forgotten with the owner.

Prometheus refuses a second collector of the same name in one registry, and tests build
apps (and so planes) many times over one registry; script objects hash their source, which
is worth doing once per Redis client rather than per request. `PerOwner` keeps what was
built in a `WeakKeyDictionary`, so an owner that goes away takes its objects with it (unless
the object refers back to its owner, as redis-py's scripts do: such an entry is never
freed, which costs one entry per Redis client, and a process has one).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class PerOwner(Generic[K, V]):
    """`build(owner)` once per live `owner`; later calls return the same object."""

    def __init__(self, build: Callable[[K], V]) -> None:
        self._build = build
        self._built: weakref.WeakKeyDictionary[K, V] = weakref.WeakKeyDictionary()

    def __call__(self, owner: K) -> V:
        found = self._built.get(owner)
        if found is None:
            found = self._build(owner)
            self._built[owner] = found
        return found
