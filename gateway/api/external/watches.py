"""`/v1/watches`: watch parcels for changes, list and delete watches, read a watch's
changes log (thin: `gateway/watches/service.py` holds the logic). A caller sees only its
own watches: anyone else's is a 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from gateway.api.deps import plane_of
from gateway.api.external.jobs import page_size
from gateway.api.external.jobs_deps import owner_of
from gateway.api.external.public_deps import Caller, CallerDep
from gateway.api.external.requires import requires
from gateway.core.errors import Forbidden
from gateway.jobs.owner import Owner
from gateway.public.permissions import Scope
from gateway.public.principal import PrincipalKind
from gateway.watches.models import (
    WATCH_ID_PATTERN,
    ParcelChangeList,
    WatchIn,
    WatchList,
    WatchOut,
)
from gateway.watches.plane import WatchesPlane

router = APIRouter(prefix="/v1", tags=["watches"])

WatchIdPath = Annotated[str, Path(pattern=WATCH_ID_PATTERN, description="The watch id")]
Limit = Annotated[int | None, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=512)]
_NO_STORE = {"Cache-Control": "no-store"}


async def get_watches_plane(request: Request) -> WatchesPlane:
    """The watches plane of this app."""
    plane: WatchesPlane = plane_of(request, WatchesPlane.name)
    return plane


async def get_watch_owner(caller: CallerDep) -> Owner:
    """The caller as a watch owner; anonymous callers hold none (403)."""
    if caller.principal.kind is PrincipalKind.ANONYMOUS:
        raise Forbidden("Watches need an account: sign in or use an API key")
    return owner_of(caller)


PlaneDep = Annotated[WatchesPlane, Depends(get_watches_plane)]
OwnerDep = Annotated[Owner, Depends(get_watch_owner)]


@router.post("/watches", status_code=201, summary="Watch parcels for changes")
async def create_watch(
    _allowed: Annotated[Caller, requires(Scope.WATCHES_WRITE)],
    body: WatchIn,
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
) -> WatchOut:
    """From now on, a committed result that changes a watched field of one of these
    parcels sends `parcel.changed` to your webhooks and subscribed sockets."""
    created = await plane.service.create(owner, body)
    response.headers["Location"] = f"/v1/watches/{created.id}"
    response.headers.update(_NO_STORE)
    return created


@router.get("/watches", summary="The caller's watches, newest first")
async def list_watches(
    _allowed: Annotated[Caller, requires(Scope.WATCHES_READ)],
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
    limit: Limit = None,
    cursor: Cursor = None,
) -> WatchList:
    """A page of watches; follow `next_cursor` for the next one."""
    response.headers.update(_NO_STORE)
    return await plane.service.list_watches(owner, limit=page_size(owner, limit), cursor=cursor)


@router.get("/watches/{watch_id}", summary="One watch")
async def get_watch(
    _allowed: Annotated[Caller, requires(Scope.WATCHES_READ)],
    watch_id: WatchIdPath,
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
) -> WatchOut:
    """One of the caller's watches."""
    response.headers.update(_NO_STORE)
    return await plane.service.get(owner, watch_id)


@router.delete("/watches/{watch_id}", status_code=204, summary="Stop watching")
async def delete_watch(
    _allowed: Annotated[Caller, requires(Scope.WATCHES_WRITE)],
    watch_id: WatchIdPath,
    owner: OwnerDep,
    plane: PlaneDep,
) -> None:
    """The watch and its changes log are gone; no more `parcel.changed` for it."""
    await plane.service.delete(owner, watch_id)


@router.get("/watches/{watch_id}/changes", summary="A watch's changes, newest first")
async def list_changes(
    _allowed: Annotated[Caller, requires(Scope.WATCHES_READ)],
    watch_id: WatchIdPath,
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ParcelChangeList:
    """Every `parcel.changed` recorded for this watch (what webhooks and sockets got)."""
    response.headers.update(_NO_STORE)
    return await plane.service.changes(
        owner, watch_id, limit=page_size(owner, limit), cursor=cursor
    )
