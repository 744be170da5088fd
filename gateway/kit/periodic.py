"""Background loops with one lifecycle: start, run a step every interval, stop cleanly.

Every plane's background work (the lease reaper, proxy upkeep, dependency probes) is a
`PeriodicLoop`, so they share one answer to the awkward parts:
- a failing step is logged and retried next interval; the loop never dies of an outage;
- the interval is measured from the start of a step (a slow step does not drift it);
- stopping lets a step in progress finish (cancelling redis-py or asyncpg mid-command
  can leak the connection or hang its teardown) and cancels it only after `stop_grace_s`,
  so the process still stops within its graceful timeout;
- an optional `wake` event ends the wait early (work arrived); it is cleared when a step
  starts, so any number of wakes during a step, or between two steps, make one step;
- waits use `asyncio.wait`, not `wait_for` (on Python 3.11 a cancel racing `wait_for`'s
  timeout is swallowed), so a cancel always lands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Self

import structlog

log = structlog.get_logger("gateway.kit.periodic")

DEFAULT_STOP_GRACE_S = 2.0


async def wait_any(events: Iterable[asyncio.Event], timeout_s: float) -> None:
    """Return when any of `events` is set or after `timeout_s`, whichever is first."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(
            waiters, timeout=max(0.0, timeout_s), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiter in waiters:
            waiter.cancel()


class PeriodicLoop:
    """Run `step` every `interval_s` from `start()` until `stop()` or `stopping` is set
    (and at once whenever `wake` is set)."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        interval_s: float,
        *,
        stopping: asyncio.Event | None = None,
        stop_grace_s: float = DEFAULT_STOP_GRACE_S,
        wake: asyncio.Event | None = None,
        **log_fields: object,
    ) -> None:
        self.name = name
        self._step = step
        self._interval_s = interval_s
        self._stop_grace_s = stop_grace_s
        self._log_fields = log_fields
        self._closing = asyncio.Event()
        self._events = [self._closing] if stopping is None else [self._closing, stopping]
        self._wake = wake
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the loop was started and not stopped by `stop()`."""
        return self._task is not None

    @property
    def stopped(self) -> bool:
        """Whether the loop was asked to stop (by `stop()` or the process)."""
        return any(event.is_set() for event in self._events)

    async def _run(self) -> None:
        while not self.stopped:
            started = time.monotonic()
            if self._wake is not None:
                self._wake.clear()
            waits = self._events if self._wake is None else [*self._events, self._wake]
            try:
                await self._step()
            except Exception as exc:  # an outage must not kill the loop; it retries
                # A full interval later, whatever wakes it meanwhile (no busy retry).
                waits = self._events
                log.warning(
                    "periodic_step_failed",
                    loop=self.name,
                    error=type(exc).__name__,
                    **self._log_fields,
                )
            await wait_any(waits, self._interval_s - (time.monotonic() - started))

    def start(self) -> None:
        """Start the loop in a task of the running event loop."""
        if self._task is not None:
            raise RuntimeError(f"periodic loop {self.name!r} already started")
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop: let a step in progress finish, cancel it after the grace period."""
        self._closing.set()
        task, self._task = self._task, None
        if task is None:
            return
        _, pending = await asyncio.wait([task], timeout=self._stop_grace_s)
        if pending:
            log.warning("periodic_stop_timeout", loop=self.name, **self._log_fields)
            task.cancel()
            await asyncio.wait([task])

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
