"""Background upkeep of the proxy pool, run by each internal app while it serves.

Correctness never depends on it (every lease call reclaims expired leases and ends due
cool-downs itself); it keeps the `gateway_proxies` gauge fresh, returns proxies of
crashed workers even when nobody is leasing, and re-syncs the inventory on schedule.
Several replicas running it at once is harmless: each step is one atomic script.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.kit.periodic import PeriodicLoop
from gateway.proxy_pool.service import ProxyPool


@contextlib.asynccontextmanager
async def proxy_upkeep(resources: Resources, audience: Audience) -> AsyncIterator[None]:
    """Run the upkeep loop for one audience's gauges while the block runs."""
    pool = ProxyPool.for_resources(resources, audience)
    async with PeriodicLoop(
        f"proxy-upkeep-{audience.value}",
        pool.tick,
        resources.settings.proxy_maintenance_interval_s,
        stopping=resources.stopping,
        audience=audience.value,
    ):
        yield
