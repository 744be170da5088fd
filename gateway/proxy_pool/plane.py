"""The proxy pool's plane on a worker port: the pool and its upkeep loop.

Correctness never depends on the upkeep (every lease call reclaims expired leases and ends
due cool-downs itself); it keeps the `gateway_proxies` gauge fresh, returns proxies of
crashed workers even when nobody is leasing, and re-syncs the inventory on schedule.
Several replicas running it at once is harmless: each step is one atomic script.
"""

from __future__ import annotations

from typing import ClassVar, Self

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.kit.periodic import PeriodicLoop
from gateway.proxy_pool.service import ProxyPool


class ProxyPoolPlane:
    """The pool one worker port serves, counting into that port's registry."""

    name: ClassVar[str] = "proxy_pool"

    def __init__(self, pool: ProxyPool, upkeep: PeriodicLoop) -> None:
        self.pool = pool
        self._upkeep = upkeep

    @classmethod
    def build(cls, resources: Resources, audience: Audience) -> Self:
        """The pool on the shared resources, with its upkeep loop (not yet started)."""
        pool = ProxyPool.for_resources(resources, audience)
        upkeep = PeriodicLoop(
            f"proxy-upkeep-{audience.value}",
            pool.tick,
            resources.settings.proxy_maintenance_interval_s,
            stopping=resources.stopping,
            audience=audience.value,
        )
        return cls(pool, upkeep)

    async def start(self) -> None:
        """Start the upkeep loop."""
        self._upkeep.start()

    async def stop(self) -> None:
        """Stop the upkeep loop (a tick in progress finishes first)."""
        await self._upkeep.stop()
