"""Readiness: can this process reach Redis and PostgreSQL right now?

Each check runs with a short timeout and both run concurrently, so `/ready` answers within
`READY_TIMEOUT_S` even when a backend hangs rather than refuses. Failures are reported
by name and exception class only: driver messages can contain connection URLs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.core.database import ping as ping_database
from gateway.core.resources import Resources


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one dependency check."""

    name: str
    ok: bool
    latency_ms: float
    error: str | None = None


async def _check(name: str, probe: Callable[[], Awaitable[object]], limit_s: float) -> CheckResult:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit_s):
            await probe()
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
            _check("redis", resources.redis.ping, timeout),
            _check("database", lambda: ping_database(resources.engine), timeout),
        )
    )
