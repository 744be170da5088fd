"""`/internal/proxy/*`: workers lease, release and rotate outbound proxies.

Served on both internal ports; the pool behind them is shared (see
`gateway.proxy_pool.service` for why). The lease response carries the proxy URL
with its credentials: it is the one place they leave the gateway, to an authenticated
worker, and the access log records only the route and status, never bodies.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.internal.auth import WorkerDep, authenticate_worker
from gateway.api.internal.plane import ProxyPoolDep
from gateway.core.observability.log_context import bind_worker
from gateway.proxy_pool.service import LEASE_ID_PATTERN, ProxyHolder, ProxyLease, Release
from gateway.work.models import Platform, WorkerId

# Every proxy endpoint needs a worker token of this port's audience (any role).
WORKER_AUTH = Depends(authenticate_worker)

router = APIRouter(prefix="/internal/proxy", tags=["proxy pool"], dependencies=[WORKER_AUTH])

_PROBLEMS: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing or invalid worker token"},
    422: {"description": "Invalid request body"},
    503: {"description": "No proxy available (see Retry-After) or a backend is down"},
}
_HELD: dict[int | str, dict[str, str]] = {
    403: {"description": "The lease is held by another token or worker id (not_lease_holder)"},
    404: {"description": "Unknown proxy lease"},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeaseRequest(_Strict):
    """Ask for a proxy to scrape one platform with."""

    worker_id: WorkerId
    platform: Platform


class ReleaseRequest(_Strict):
    """Give a proxy back and say how it did; `worker_id` must be the one that leased it."""

    worker_id: WorkerId
    proxy_lease_id: str = Field(pattern=LEASE_ID_PATTERN)
    outcome: Literal["ok", "banned", "error"]
    status_code: int | None = Field(default=None, ge=100, le=599)


class LeaseResponse(BaseModel):
    """A leased proxy; `proxy_url` includes credentials."""

    proxy_lease_id: str
    proxy_id: str
    proxy_url: str
    platform: str
    expires_at: datetime


class ReleaseResponse(BaseModel):
    """What the release did: `released`, `expired` (the lease had run out; a ban still
    counts) or `already_released` (a retried call; nothing changed)."""

    proxy_lease_id: str
    status: Literal["released", "expired", "already_released"]
    platform: str
    proxy_id: str
    cooldown_s: float


class RotateResponse(LeaseResponse):
    """The new lease, plus what happened to the old one."""

    released: ReleaseResponse


def _lease_body(lease: ProxyLease) -> LeaseResponse:
    return LeaseResponse(
        proxy_lease_id=lease.proxy_lease_id,
        proxy_id=lease.proxy_id,
        proxy_url=lease.proxy_url,
        platform=lease.platform,
        expires_at=lease.expires_at,
    )


def _release_body(lease_id: str, released: Release) -> ReleaseResponse:
    return ReleaseResponse(
        proxy_lease_id=lease_id,
        status=released.status,
        platform=released.platform,
        proxy_id=released.proxy_id,
        cooldown_s=released.cooldown_s,
    )


@router.post("/lease", summary="Lease a proxy for a platform", responses=_PROBLEMS)
async def lease_proxy(
    body: LeaseRequest, proxies: ProxyPoolDep, principal: WorkerDep
) -> LeaseResponse:
    """Lease the healthiest, least recently used proxy free on that platform, bound to
    this token and `worker_id`."""
    bind_worker(body.worker_id, platform=body.platform)
    holder = ProxyHolder(principal.token_id, body.worker_id)
    return _lease_body(await proxies.pool.lease(holder, body.platform))


@router.post("/release", summary="Release a proxy with its outcome", responses=_PROBLEMS | _HELD)
async def release_proxy(
    body: ReleaseRequest, proxies: ProxyPoolDep, principal: WorkerDep
) -> ReleaseResponse:
    """Return a proxy; `banned` cools it down on that platform, `error` lowers its rank.
    Only the lease's holder (token and `worker_id`) may release it."""
    bind_worker(body.worker_id)
    holder = ProxyHolder(principal.token_id, body.worker_id)
    pool = proxies.pool
    released = await pool.release(holder, body.proxy_lease_id, body.outcome, body.status_code)
    return _release_body(body.proxy_lease_id, released)


@router.post(
    "/rotate", summary="Release a proxy and lease another in one call", responses=_PROBLEMS | _HELD
)
async def rotate_proxy(
    body: ReleaseRequest, proxies: ProxyPoolDep, principal: WorkerDep
) -> RotateResponse:
    """Release with an outcome and lease a different proxy of the same platform; only
    the lease's holder may rotate it."""
    bind_worker(body.worker_id)
    holder = ProxyHolder(principal.token_id, body.worker_id)
    pool = proxies.pool
    released, lease = await pool.rotate(holder, body.proxy_lease_id, body.outcome, body.status_code)
    return RotateResponse(
        **_lease_body(lease).model_dump(),
        released=_release_body(body.proxy_lease_id, released),
    )
