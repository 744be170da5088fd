"""Dependencies of the public routes: the plane, the caller, the limiter decision."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from gateway.api.deps import plane_of
from gateway.api.middleware.security_headers import RESPONSE_HEADERS_STATE
from gateway.audit.actor import Actor
from gateway.core.errors import GatewayError
from gateway.core.settings.tiers import Tier
from gateway.public.authenticate import Credentials
from gateway.public.plane import PublicPlane
from gateway.public.principal import Principal
from gateway.public.ratelimit import Decision


def public_plane(request: Request) -> PublicPlane:
    """The public plane of the app serving `request`."""
    plane: PublicPlane = plane_of(request, PublicPlane.name)
    return plane


def public_plane_of(app: Any) -> PublicPlane:
    """The public plane of an app (for ASGI layers, which have no request)."""
    plane: PublicPlane = app.state.planes[PublicPlane.name]
    return plane


async def get_plane(request: Request) -> PublicPlane:
    """The public plane of this app (async: FastAPI runs sync dependencies in threads)."""
    return public_plane(request)


PlaneDep = Annotated[PublicPlane, Depends(get_plane)]


def client_ip_of(
    headers: Mapping[str, str], client: tuple[str, int] | Any, plane: PublicPlane
) -> str:
    """The caller's address; the last `X-Forwarded-For` hop only behind a trusted proxy."""
    if plane.resources.settings.trust_forwarded_for:
        forwarded = headers.get("x-forwarded-for")
        if forwarded:
            return forwarded.split(",")[-1].strip()[:64]
    return str(client[0]) if client else "unknown"


def client_ip(request: Request, plane: PublicPlane) -> str:
    """`client_ip_of` for a FastAPI request."""
    return client_ip_of(request.headers, request.scope.get("client"), plane)


@dataclass(frozen=True)
class Caller:
    """An authenticated caller whose request was admitted by the limiter."""

    principal: Principal
    decision: Decision


# Where the cache-hit shortcut (`property_shortcut.py`) leaves a caller it authenticated
# and admitted but could not answer from the cache: the route must not authenticate or
# take budget a second time.
PRE_ADMITTED_STATE = "public_pre_admitted"


def pre_admitted(scope: Mapping[str, Any]) -> Caller | None:
    """The caller the shortcut (or a dependency) already admitted for this request."""
    state = scope.get("state")
    caller = state.get(PRE_ADMITTED_STATE) if state else None
    return caller if isinstance(caller, Caller) else None


def remember_admitted(scope: MutableMapping[str, Any], caller: Caller) -> None:
    """Keep the admitted caller, so no other dependency of the request admits it again."""
    scope.setdefault("state", {})[PRE_ADMITTED_STATE] = caller


# Where the idempotency layer (`api/middleware/idempotency.py`) leaves the outcome of
# authenticating the caller, a `Principal` or the `GatewayError` to answer: the route
# neither authenticates again nor counts a failed attempt twice.
AUTHENTICATED_STATE = "public_authenticated"


async def get_principal(request: Request) -> Principal:
    """Authenticate the caller (401/429 on failure); no budget is consumed yet."""
    state = request.scope.get("state")
    if state:
        earlier = state.get(PRE_ADMITTED_STATE) or state.get(AUTHENTICATED_STATE)
        if isinstance(earlier, Caller):
            return earlier.principal
        if isinstance(earlier, Principal):
            return earlier
        if isinstance(earlier, GatewayError):
            raise earlier
    # The plane is read here rather than through `PlaneDep`: every dependency node costs
    # FastAPI tens of microseconds per request, and this one sits on every public route.
    plane = public_plane(request)
    credentials = Credentials.from_raw(request.scope["headers"])
    return await plane.authenticator.authenticate(credentials, client_ip(request, plane))


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def admit(
    scope: MutableMapping[str, Any],
    plane: PublicPlane,
    principal: Principal,
    *,
    prefetch: str | None = None,
) -> Decision:
    """Take one unit of the caller's rate limit and daily quota, or raise 429.

    `scope` is the request's ASGI scope; `prefetch` names a Redis key (a cached
    response) to read in the same round trip.
    """
    return await admit_key(scope, plane, principal.limit_key, principal.tier, prefetch=prefetch)


async def admit_key(
    scope: MutableMapping[str, Any],
    plane: PublicPlane,
    limit_key: str,
    tier: Tier,
    *,
    prefetch: str | None = None,
) -> Decision:
    """`admit` for a limit key and tier (a caller known from a stream ticket)."""
    decision = await plane.limiter.check(limit_key, tier, prefetch=prefetch)
    # Every response of an admitted (or refused) request carries the limiter state.
    scope.setdefault("state", {})[RESPONSE_HEADERS_STATE] = decision.limit_headers()
    if not decision.allowed:
        plane.metrics.rate_limited.labels(tier.name, decision.kind or "rate").inc()
        raise decision.error()
    return decision


async def get_caller(request: Request, plane: PlaneDep, principal: PrincipalDep) -> Caller:
    """Authenticate, then admit the request through the limiter (once per request)."""
    caller = pre_admitted(request.scope)
    if caller is not None:
        return caller
    caller = Caller(principal, await admit(request.scope, plane, principal))
    remember_admitted(request.scope, caller)  # for a `requires(...)` resolved after
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_actor(request: Request, plane: PlaneDep, caller: CallerDep) -> Actor:
    """The caller as the audit trail names it: principal, role, address, request id."""
    p = caller.principal
    return Actor(
        principal=p.limit_key,
        role=p.role.value,
        user=p.user_uid,
        ip=client_ip(request, plane),
        request_id=getattr(request.state, "request_id", None),
    )


# For routes whose service records an audit row (FastAPI resolves `CallerDep` once).
ActorDep = Annotated[Actor, Depends(get_actor)]
