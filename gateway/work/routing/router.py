"""Which side each task goes to: its route (audience, platform, origin), the route's
share (runtime, else configured) and the task's position (`split.py`).

A route's `platform` is a platform name or `"*"`; its `kind` an origin (a job kind, or
`producer`) or none. The most specific route wins: (platform, kind), (platform),
("*", kind), ("*"). A task with no route, or whose position is not below its route's
share, stays native. The decision is the task's *lane*, written into the task when it
is created (`enqueue.lua`, `attach.lua`): the route id for Celery, empty for native. A
live task keeps its lane for its whole life (retries, reclaimed leases, dead-letter
requeues), so a share changed meanwhile applies to tasks enqueued afterwards only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.settings.celery import CeleryRoute
from gateway.work.models import TaskIn
from gateway.work.routing.shares import ShareEntry, SharesCache
from gateway.work.routing.split import goes_to_celery

NATIVE = ""


@dataclass(frozen=True)
class RouteView:
    """A route as operators see it: its configuration and the share in force."""

    route: CeleryRoute
    share: float
    set_by: str | None
    set_at: str | None


class CeleryRouter:
    """Routes of one deployment, with their runtime shares."""

    def __init__(self, routes: Sequence[CeleryRoute], shares: SharesCache) -> None:
        self.routes = {r.id: r for r in routes}
        self.shares = shares
        self._index: dict[tuple[str, str, str | None], CeleryRoute] = {
            (r.audience, r.platform, r.kind): r for r in routes
        }

    def audiences(self) -> set[str]:
        """Audiences with at least one route."""
        return {r.audience for r in self.routes.values()}

    def route_for(self, audience: str, platform: str, kind: str | None) -> CeleryRoute | None:
        """The most specific route of a task, or None."""
        for p, k in ((platform, kind), (platform, None), ("*", kind), ("*", None)):
            route = self._index.get((audience, p, k))
            if route is not None:
                return route
        return None

    @staticmethod
    def share_of(route: CeleryRoute, shares: dict[str, ShareEntry]) -> float:
        """The share in force: set at runtime, else configured."""
        entry = shares.get(route.id)
        return entry.share if entry is not None else route.share

    async def lanes(self, audience: str, tasks: Sequence[TaskIn], kind: str | None) -> list[str]:
        """Each task's lane: a route id (Celery) or `NATIVE`."""
        if not any(r.audience == audience for r in self.routes.values()):
            return [NATIVE] * len(tasks)
        shares = await self.shares.current()
        out = []
        for task in tasks:
            route = self.route_for(audience, task.platform, kind)
            if route is not None and goes_to_celery(
                task.platform, task.key, self.share_of(route, shares)
            ):
                out.append(route.id)
            else:
                out.append(NATIVE)
        return out

    async def share_in_force(self, route_id: str) -> float:
        """The share this process applies to `route_id` now (its cached copy)."""
        return self.share_of(self.routes[route_id], await self.shares.current())

    async def views(self) -> list[RouteView]:
        """Every route with the share in force (fresh from Redis)."""
        shares = await self.shares.store.read()
        out = []
        for route in self.routes.values():
            entry = shares.get(route.id)
            out.append(
                RouteView(
                    route,
                    self.share_of(route, shares),
                    entry.by if entry else None,
                    entry.at if entry else None,
                )
            )
        return out


class AudienceLanes:
    """The router bound to one audience: the queue's `LaneChooser`."""

    def __init__(self, router: CeleryRouter, audience: str) -> None:
        self.router = router
        self.audience = audience

    async def lanes(self, tasks: Sequence[TaskIn], kind: str | None) -> list[str]:
        """Per task: a Celery route id, or `NATIVE`."""
        return await self.router.lanes(self.audience, tasks, kind)
