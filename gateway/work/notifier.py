"""Long-poll wake-ups: Redis pub/sub fans "platform P has ready work" out to waiters.

A worker's `GET /internal/work` that finds nothing registers a waiter for its platforms
*before* its lease attempt and then sleeps on an `asyncio.Event`; the enqueue, requeue
and promotion scripts `PUBLISH` the platform on the audience's wake channel, and one
subscriber task per audience and process sets the matching waiters' events. Because the
waiter exists before the lease attempt, a task enqueued between "found nothing" and
"went to sleep" still wakes it: there is no lost wake-up, and Redis is not polled.

If the subscription drops, every waiter is woken (they retry their lease) and the
subscriber reconnects; waiters also re-check at least every `SAFETY_RECHECK_S`, so a
lost message costs latency, never work.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator

import structlog
from redis.asyncio import Redis

log = structlog.get_logger("gateway.work.notifier")

SAFETY_RECHECK_S = 5.0
_RECONNECT_DELAY_S = 0.5
# How long one pub/sub read waits; bounds how quickly the subscriber notices `stop()`.
_POLL_S = 0.5


class _Waiter:
    __slots__ = ("event", "platforms")

    def __init__(self, platforms: frozenset[str]) -> None:
        self.platforms = platforms
        self.event = asyncio.Event()


class Notifier:
    """Wakes local long-poll waiters when their platforms get ready work."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._waiters: set[_Waiter] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.subscribed = asyncio.Event()

    @contextlib.contextmanager
    def waiter(self, platforms: Iterable[str]) -> Iterator[asyncio.Event]:
        """Register interest in `platforms` for the duration of the block."""
        waiter = _Waiter(frozenset(platforms))
        self._waiters.add(waiter)
        try:
            yield waiter.event
        finally:
            self._waiters.discard(waiter)

    def wake(self, platform: str | None) -> None:
        """Wake the waiters of `platform` (all waiters when None)."""
        for waiter in self._waiters:
            if platform is None or platform in waiter.platforms:
                waiter.event.set()

    def start(self) -> None:
        """Start the subscriber task."""
        self._task = asyncio.create_task(self._run(), name=f"notifier:{self._channel}")

    async def stop(self) -> None:
        """Stop the subscriber and wake everyone so long-polls answer now."""
        self._closing = True
        if self._task is not None:
            # An empty message matches no waiter anywhere; it only ends our pending read.
            # Bounded: with Redis hanging, shutdown must not wait for the socket timeout.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_POLL_S * 2):
                    await self._redis.publish(self._channel, b"")
            # Let the loop notice the flag and unsubscribe cleanly; cancelling redis-py's
            # pub/sub mid-read can leave its close waiting forever.
            done, _ = await asyncio.wait({self._task}, timeout=_POLL_S * 3)
            if not done:
                self._task.cancel()  # not awaited: see above; it must not hold up shutdown
                log.warning("wake_subscriber_stop_timeout", channel=self._channel)
            self._task = None
        self.wake(None)

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dropped subscription must not end long-polling
                self.subscribed.clear()
                log.warning("wake_subscription_lost", error=type(exc).__name__)
                self.wake(None)
                await asyncio.sleep(_RECONNECT_DELAY_S)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self._channel)
            self.subscribed.set()
            # Messages may have been missed while (re)subscribing.
            self.wake(None)
            while not self._closing:
                message = await pubsub.get_message(timeout=_POLL_S)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    self.wake(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
