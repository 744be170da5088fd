"""Wait for a condition instead of sleeping for a guess.

A test that sleeps "long enough" for something to happen fails on a busy machine, where
nothing is long enough, and wastes time on a quiet one. These helpers poll a predicate
until it holds or a generous deadline passes; the deadline only bounds a failing test,
so it is far above anything a passing test needs (30 s by default) and nothing should
assert on how long the wait took.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

DEFAULT_TIMEOUT_S = 30.0
_POLL_S = 0.02


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    within_s: float = DEFAULT_TIMEOUT_S,
    what: str = "the condition",
) -> None:
    """Return once `predicate()` (sync or async) is true; fail after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        outcome = predicate()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within_s:g} s")
        await asyncio.sleep(_POLL_S)


def wait_until_sync(
    predicate: Callable[[], bool],
    *,
    within_s: float = DEFAULT_TIMEOUT_S,
    what: str = "the condition",
) -> None:
    """`wait_until` for threads and synchronous tests."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within_s:g} s")
        time.sleep(_POLL_S)
