"""Concurrent callers asking for the same thing share one call.

A per-process cache that expires (verified API keys, users, Firebase tokens) would
otherwise send every request in flight at the moment of expiry to the database or the
verifier at once: with 64 concurrent requests for one hot key, 64 identical queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """`run(key, call)`: the first caller runs `call`, concurrent ones await its outcome.

    Followers receive the leader's result or its exception. A leader that is cancelled
    (its own request went away) does not cancel its followers: they try again, one of
    them leading.
    """

    def __init__(self) -> None:
        self._pending: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        """The outcome of `call()`, run at most once at a time per key."""
        while (pending := self._pending.get(key)) is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled, not the leader
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            result = await call()
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: there may be no follower
            raise
        except BaseException:
            future.cancel()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._pending[key]
