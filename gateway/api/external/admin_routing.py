"""`/v1/admin/routing`: Celery routes and their runtime shares (admin role)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from gateway.api.deps import ResourcesDep
from gateway.api.external.public_deps import ActorDep, Caller
from gateway.api.external.requires import requires
from gateway.public.permissions import Scope
from gateway.work.plane import routing_service
from gateway.work.routing.router import RouteView
from gateway.work.routing.service import RoutingService
from gateway.work.routing.shares import ShareEntry

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class RouteOut(BaseModel):
    """A route, its configured share and the share in force (who set it, when)."""

    id: str
    audience: str
    platform: str
    kind: str | None
    task: str
    queue: str
    configured_share: float
    share: float
    set_by: str | None
    set_at: str | None


class ShareChangeOut(BaseModel):
    """One recorded share change."""

    route: str
    share: float
    by: str
    at: str


class RoutingOut(BaseModel):
    """Every route, and the latest share changes (newest first)."""

    enabled: bool
    routes: list[RouteOut]
    history: list[ShareChangeOut]


class RoutingIn(BaseModel):
    """New shares by route id (0.0 … 1.0), for tasks enqueued from now on."""

    shares: dict[str, float] = Field(max_length=100)


def _route(view: RouteView) -> RouteOut:
    r = view.route
    return RouteOut(
        id=r.id,
        audience=r.audience,
        platform=r.platform,
        kind=r.kind,
        task=r.task,
        queue=r.queue,
        configured_share=r.share,
        share=view.share,
        set_by=view.set_by,
        set_at=view.set_at,
    )


def _change(entry: ShareEntry) -> ShareChangeOut:
    return ShareChangeOut(route=entry.route, share=entry.share, by=entry.by, at=entry.at)


async def _view(service: RoutingService) -> RoutingOut:
    if not service.enabled:
        return RoutingOut(enabled=False, routes=[], history=[])
    routes = [_route(v) for v in await service.show()]
    history = [_change(e) for e in await service.history()]
    return RoutingOut(enabled=True, routes=routes, history=history)


@router.get("/routing", summary="Celery routes and their shares (admin role)")
async def get_routing(
    admin: Annotated[Caller, requires(Scope.ADMIN_READ)], resources: ResourcesDep
) -> RoutingOut:
    """Every route with the share in force, and the latest changes."""
    return await _view(routing_service(resources))


@router.put("/routing", summary="Change Celery routing shares (admin role)")
async def put_routing(
    body: RoutingIn,
    admin: Annotated[Caller, requires(Scope.ADMIN_WRITE)],
    actor: ActorDep,
    resources: ResourcesDep,
) -> RoutingOut:
    """Set shares; every replica applies them within a second, to tasks enqueued after."""
    service = routing_service(resources)
    await service.set_shares(body.shares, actor)
    return await _view(service)


class DrainIn(BaseModel):
    """The route whose tasks go back to native (configured or removed)."""

    route: str = Field(max_length=200)


class DrainOut(BaseModel):
    """Tasks moved from the Celery ready set to native ready now, and tasks (delayed,
    dead, leased) that go native when they are next ready."""

    route: str
    to_native: int
    relabelled: int


@router.post("/routing/drain", summary="Send a route's tasks back to native (admin role)")
async def drain_routing(
    body: DrainIn,
    admin: Annotated[Caller, requires(Scope.ADMIN_WRITE)],
    actor: ActorDep,
    resources: ResourcesDep,
) -> DrainOut:
    """Take a Celery route's lane off its live tasks (e.g. after removing the route)."""
    drained = await routing_service(resources).drain(body.route, actor=actor, loc=["body", "route"])
    return DrainOut(route=body.route, to_native=drained.to_native, relabelled=drained.relabelled)
