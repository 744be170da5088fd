"""Show and change routing shares: what `GET/PUT /v1/admin/routing` and
`gateway routing show|set` both call (one path for both)."""

from __future__ import annotations

import math

from gateway.core.errors import NotFound
from gateway.kit.field_errors import invalid_field
from gateway.work.routing.router import CeleryRouter, RouteView
from gateway.work.routing.shares import ShareEntry


class RoutingService:
    """The deployment's routes and their runtime shares."""

    def __init__(self, router: CeleryRouter) -> None:
        self.router = router

    async def show(self) -> list[RouteView]:
        """Every route with the share in force and who set it."""
        return await self.router.views()

    async def history(self, limit: int = 20) -> list[ShareEntry]:
        """The latest share changes, newest first."""
        return await self.router.shares.store.history(limit)

    async def set_share(self, route_id: str, share: float, by: str) -> RouteView:
        """Set one route's share (0..1) for tasks enqueued from now on."""
        if isinstance(share, bool) or not math.isfinite(share) or not 0.0 <= share <= 1.0:
            raise invalid_field("body", "share", msg="must be a number from 0.0 to 1.0")
        route = self.router.routes.get(route_id)
        if route is None:
            known = ", ".join(sorted(self.router.routes)) or "none"
            raise NotFound(f"no route {route_id!r} (routes: {known})")
        entry = await self.router.shares.store.write(route_id, float(share), by)
        return RouteView(route, entry.share, entry.by, entry.at)
