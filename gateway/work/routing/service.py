"""Show and change routing shares: what `GET/PUT /v1/admin/routing` and
`gateway routing show|set|drain` both call (one path for both). Changes are audited
(`routing.set`, `routing.drain`): shares live in Redis, so each row is written right
after the change, in a transaction of its own."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from gateway.audit.actions import Action
from gateway.audit.actor import Actor
from gateway.audit.service import AuditLog
from gateway.core.errors import InvalidInput
from gateway.work.queue import Drained, WorkQueue
from gateway.work.routing.router import CeleryRouter, RouteView
from gateway.work.routing.shares import ShareEntry

# A route id, configured or not (a route removed from CELERY_ROUTES can still be drained).
ROUTE_ID = re.compile(
    r"^(parcel|party)/(\*|[a-z0-9][a-z0-9_-]{0,63})(/(producer|parcel_refresh|party_refresh))?$"
)


class RoutingService:
    """The deployment's routes, their runtime shares, and draining a route's tasks."""

    def __init__(
        self, router: CeleryRouter, queues: Mapping[str, WorkQueue], audit: AuditLog
    ) -> None:
        self.router = router
        self.queues = queues
        self.audit = audit

    @property
    def enabled(self) -> bool:
        """Whether any route is configured."""
        return bool(self.router.routes)

    async def show(self) -> list[RouteView]:
        """Every route with the share in force and who set it."""
        return await self.router.views()

    async def history(self, limit: int = 20) -> list[ShareEntry]:
        """The latest share changes, newest first."""
        return await self.router.shares.store.history(limit)

    async def set_share(self, route_id: str, share: float, actor: Actor) -> RouteView:
        """Set one route's share (0..1) for tasks enqueued from now on."""
        (view,) = await self.set_shares({route_id: share}, actor)
        return view

    async def set_shares(self, shares: Mapping[str, float], actor: Actor) -> list[RouteView]:
        """Set several routes' shares; nothing is written unless every one is valid."""
        errors = []
        for route_id, share in shares.items():
            loc = ["body", "shares", route_id]
            if route_id not in self.router.routes:
                known = ", ".join(sorted(self.router.routes)) or "none are configured"
                errors.append({"loc": loc, "msg": f"no such route ({known})", "type": "unknown"})
            elif (
                isinstance(share, bool)
                or not isinstance(share, int | float)
                or not math.isfinite(share)
                or not 0.0 <= share <= 1.0
            ):
                errors.append(
                    {"loc": loc, "msg": "must be a number from 0.0 to 1.0", "type": "value_error"}
                )
        if not shares:
            errors.append(
                {"loc": ["body", "shares"], "msg": "name at least one route", "type": "missing"}
            )
        if errors:
            raise InvalidInput(errors)
        before = {v.route.id: v.share for v in await self.show()}
        out = []
        for route_id, share in shares.items():
            entry = await self.router.shares.store.write(route_id, float(share), _by(actor))
            out.append(RouteView(self.router.routes[route_id], entry.share, entry.by, entry.at))
            await self.audit.record_alone(
                actor,
                Action.ROUTING_SET,
                f"routing:{route_id}",
                before={"share": before.get(route_id)},
                after={"share": entry.share},
            )
        return out

    async def drain(
        self, route_id: str, *, actor: Actor, loc: list[str | int] | None = None
    ) -> Drained:
        """Send the tasks routed to `route_id` back to native: those waiting for the
        dispatcher now, the others when they are next ready. The route may be gone from
        CELERY_ROUTES (its tasks would be dead-lettered otherwise); while it is
        configured with a share above 0, new tasks still go to Celery."""
        found = ROUTE_ID.fullmatch(route_id)
        if found is None:
            raise InvalidInput(
                [
                    {
                        "loc": loc or ["route"],
                        "msg": "a route id: parcel|party/<platform or *>[/<kind>]",
                        "type": "value_error",
                    }
                ]
            )
        drained = await self.queues[found.group(1)].drain_lane(route_id)
        await self.audit.record_alone(
            actor,
            Action.ROUTING_DRAIN,
            f"routing:{route_id}",
            after={"to_native": drained.to_native, "relabelled": drained.relabelled},
        )
        return drained


def _by(actor: Actor) -> str:
    """Who set a share, as the routing history shows it: the credential used and, for
    an API key, the user it belongs to."""
    if actor.user is None or actor.user == actor.principal:
        return actor.principal
    return f"{actor.principal} of user {actor.user}"
