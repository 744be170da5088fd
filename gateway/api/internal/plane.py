"""Dependencies of the worker routes: the planes of the port serving the request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.api.deps import plane_of
from gateway.proxy_pool.plane import ProxyPoolPlane
from gateway.work.plane import WorkerPlane


async def get_worker_plane(request: Request) -> WorkerPlane:
    """The worker plane of the app serving this request (async: no threadpool hop)."""
    plane: WorkerPlane = plane_of(request, WorkerPlane.name)
    return plane


async def get_proxy_pool(request: Request) -> ProxyPoolPlane:
    """The proxy pool plane of the app serving this request."""
    plane: ProxyPoolPlane = plane_of(request, ProxyPoolPlane.name)
    return plane


WorkerPlaneDep = Annotated[WorkerPlane, Depends(get_worker_plane)]
ProxyPoolDep = Annotated[ProxyPoolPlane, Depends(get_proxy_pool)]
