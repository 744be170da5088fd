"""Readiness: can this process reach Redis and PostgreSQL right now?

Both checks run concurrently and `/ready` answers within `READY_TIMEOUT_S` whatever a
backend does. `asyncio.timeout` around the probe is not enough for that: it only
*requests* cancellation, and the probe's cleanup can outlive it. Against a partitioned
PostgreSQL, cancelling `SELECT 1` leaves SQLAlchemy's shielded connection close (the
reset of the connection returned to the pool) waiting on the dead socket, and the first
`/ready` took 13 s with a 1 s timeout. So each probe runs in its own task; at the
deadline the check answers "timeout" and the task is cancelled but not awaited. It ends
on its own within the driver's bounds (`gateway/core/database.py`), and is kept
referenced until then so it is never garbage-collected mid-flight.

Failures are reported by name and exception class only: driver messages can contain
connection URLs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.core.database import ping as ping_database
from gateway.core.resources import Resources

Probe = Callable[[], Awaitable[object]]

# Probes past their deadline, still unwinding; referenced so the loop does not drop them.
_abandoned: set[asyncio.Task[object]] = set()


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one dependency check."""

    name: str
    ok: bool
    latency_ms: float
    error: str | None = None


async def _run(probe: Probe) -> object:
    return await probe()


def _forget(task: asyncio.Task[object]) -> None:
    _abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "never retrieved"


async def bounded(probe: Probe, limit_s: float) -> None:
    """Run `probe`, raising `TimeoutError` after `limit_s` even if it will not stop."""
    task: asyncio.Task[object] = asyncio.ensure_future(_run(probe))
    try:
        done, _ = await asyncio.wait({task}, timeout=limit_s)
    except asyncio.CancelledError:
        task.cancel()
        _abandon(task)
        raise
    if done:
        task.result()  # raises the probe's error, if any
        return
    task.cancel()
    _abandon(task)
    raise TimeoutError


def _abandon(task: asyncio.Task[object]) -> None:
    _abandoned.add(task)
    task.add_done_callback(_forget)


async def check(name: str, probe: Probe, limit_s: float) -> CheckResult:
    """Run one probe within `limit_s`; any failure is reported by its kind only."""
    started = time.perf_counter()
    try:
        await bounded(probe, limit_s)
    except TimeoutError:
        return CheckResult(name, False, _ms(started), "timeout")
    except Exception as exc:  # any driver error means "not ready"; report its kind only
        return CheckResult(name, False, _ms(started), type(exc).__name__)
    return CheckResult(name, True, _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def check_readiness(resources: Resources) -> list[CheckResult]:
    """Check Redis and the database concurrently, each within the ready timeout."""
    timeout = resources.settings.ready_timeout_s
    return list(
        await asyncio.gather(
            check("redis", resources.redis.ping, timeout),
            check("database", lambda: ping_database(resources.engine), timeout),
        )
    )


async def drain_abandoned() -> None:
    """Wait for probes past their deadline to finish (for tests and orderly shutdown)."""
    while _abandoned:
        await asyncio.gather(*_abandoned, return_exceptions=True)
