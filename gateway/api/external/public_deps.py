"""Dependencies of the public routes: the plane, the caller, the limiter decision."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.errors import Forbidden
from gateway.middleware.security_headers import RESPONSE_HEADERS_STATE
from gateway.services.public.plane import PublicPlane
from gateway.services.public.principal import Principal
from gateway.services.public.ratelimit import Decision


def get_plane(request: Request) -> PublicPlane:
    """The public plane of this app."""
    plane: PublicPlane = request.app.state.public
    return plane


PlaneDep = Annotated[PublicPlane, Depends(get_plane)]


def client_ip(request: Request, plane: PublicPlane) -> str:
    """The caller's address; the last `X-Forwarded-For` hop only behind a trusted proxy."""
    if plane.resources.settings.trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[-1].strip()[:64]
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True)
class Caller:
    """An authenticated caller whose request was admitted by the limiter."""

    principal: Principal
    decision: Decision


async def get_caller(request: Request, plane: PlaneDep) -> Caller:
    """Authenticate, then take one unit of the caller's rate limit and daily quota."""
    principal = await plane.authenticator.authenticate(request.headers, client_ip(request, plane))
    decision = await plane.limiter.check(principal.limit_key, principal.tier)
    # Every response of an admitted (or refused) request carries the limiter state.
    request.scope.setdefault("state", {}).setdefault(RESPONSE_HEADERS_STATE, {}).update(
        {k: v for k, v in decision.headers().items() if k != "Retry-After"}
    )
    if not decision.allowed:
        plane.metrics.rate_limited.labels(principal.tier.name, decision.kind or "rate").inc()
        raise decision.error()
    return Caller(principal, decision)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_admin(caller: CallerDep) -> Caller:
    """A caller with the admin role."""
    if not caller.principal.is_admin:
        raise Forbidden("This endpoint needs the admin role")
    return caller


AdminDep = Annotated[Caller, Depends(get_admin)]
