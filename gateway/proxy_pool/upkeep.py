"""Background upkeep of the proxy pool, run by each internal app while it serves.

Correctness never depends on it (every lease call reclaims expired leases and ends due
cool-downs itself); it keeps the `gateway_proxies` gauge fresh, returns proxies of
crashed workers even when nobody is leasing, and re-syncs the inventory on schedule.
Several replicas running it at once is harmless: each step is one atomic script.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog

from gateway.core.audience import Audience
from gateway.core.errors import GatewayError
from gateway.core.resources import Resources
from gateway.proxy_pool.service import ProxyPool

log = structlog.get_logger("gateway.proxy_pool")

STOP_GRACE_S = 2.0


async def _sleep_unless(events: list[asyncio.Event], timeout_s: float) -> None:
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run_upkeep(pool: ProxyPool, stop: list[asyncio.Event], interval_s: float) -> None:
    """Tick every `interval_s` until one of `stop` is set; failures are logged, not raised."""
    while not any(event.is_set() for event in stop):
        try:
            await pool.tick()
        except (GatewayError, OSError) as exc:
            log.warning("proxy_upkeep_failed", error=type(exc).__name__)
        await _sleep_unless(stop, interval_s)


@contextlib.asynccontextmanager
async def proxy_upkeep(resources: Resources, audience: Audience) -> AsyncIterator[None]:
    """Run the upkeep loop for one audience's gauges while the block runs."""
    pool = ProxyPool.for_resources(resources, audience)
    done = asyncio.Event()
    task = asyncio.create_task(
        run_upkeep(
            pool, [resources.stopping, done], resources.settings.proxy_maintenance_interval_s
        ),
        name=f"proxy-upkeep-{audience.value}",
    )
    try:
        yield
    finally:
        # Let a tick in progress finish (cancelling an asyncpg query half-way leaks its
        # connection); a tick stuck on a hanging backend is cancelled after a grace
        # period. The loop uses `asyncio.wait`, not `wait_for` (on Python 3.11 a cancel
        # racing `wait_for`'s timeout is swallowed), so the cancel always lands.
        done.set()
        _, pending = await asyncio.wait([task], timeout=STOP_GRACE_S)
        if pending:
            task.cancel()
            await asyncio.wait([task])
