"""`GET /v1/admin/status`: the deployment's components and their health (admin role).

Components, in order: Redis and PostgreSQL (the readiness checks, bounded by
`READY_TIMEOUT_S`), then the Celery side (`gateway/work/routing/health.py`). Another
capability adds its component by appending its check to `COMPONENTS`. The answer is a
200 whatever the states are: it reports, `/ready` is what orchestrators act on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel

from gateway.api.deps import ResourcesDep
from gateway.api.external.public_deps import Caller
from gateway.api.external.requires import requires
from gateway.core.readiness import check_readiness
from gateway.core.resources import Resources
from gateway.kit.status import ComponentStatus, State, overall
from gateway.public.permissions import Scope
from gateway.work.routing.health import celery_status

router = APIRouter(prefix="/v1/admin", tags=["admin"])


async def backends_status(resources: Resources) -> list[ComponentStatus]:
    """Redis and PostgreSQL, as `/ready` checks them."""
    out = []
    for r in await check_readiness(resources):
        details: dict[str, Any] = {"latency_ms": r.latency_ms}
        if r.error:
            details["error"] = r.error
        out.append(ComponentStatus(r.name, "ok" if r.ok else "down", details))
    return out


async def _one(
    check: Callable[[Resources], Awaitable[ComponentStatus]], r: Resources
) -> list[ComponentStatus]:
    return [await check(r)]


# Each returns one or more components; run concurrently, reported in this order.
COMPONENTS: list[Callable[[Resources], Awaitable[list[ComponentStatus]]]] = [
    backends_status,
    lambda r: _one(celery_status, r),
]


class ComponentOut(BaseModel):
    """One component: its state and what it reports."""

    name: str
    status: State
    details: dict[str, Any]


class StatusOut(BaseModel):
    """The worst component state, and every component."""

    status: State
    components: list[ComponentOut]


@router.get("/status", summary="Health of the deployment's components (admin role)")
async def get_status(
    admin: Annotated[Caller, requires(Scope.ADMIN_READ)], resources: ResourcesDep
) -> StatusOut:
    """Redis, PostgreSQL and the Celery side (workers, queue depths, results lag)."""
    found = await asyncio.gather(*(check(resources) for check in COMPONENTS))
    components = [c for group in found for c in group]
    return StatusOut(
        status=overall(components),
        components=[
            ComponentOut(name=c.name, status=c.status, details=c.details) for c in components
        ],
    )
