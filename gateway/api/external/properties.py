"""`/v1/properties`: one parcel, its history, and search. Thin: validate, call, shape."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from gateway.api.external.public_deps import admit, pre_admitted, public_plane
from gateway.api.external.requires import authorized
from gateway.api.external.served import served_response
from gateway.kit.field_errors import invalid_field
from gateway.public.origin import OriginRequest
from gateway.public.permissions import Scope
from gateway.public.principal import Principal
from gateway.public.repository.parcels_read import SearchFilters

router = APIRouter(prefix="/v1/properties", tags=["properties"])

# Shared with the cache-hit shortcut, which must accept exactly the ids this route does.
PARCEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
ParcelId = Annotated[str, Path(pattern=PARCEL_ID_PATTERN, description="Parcel id")]
Cursor = Annotated[
    str | None, Query(pattern=r"^[A-Za-z0-9_=-]{1,256}$", description="Opaque page cursor")
]
Limit = Annotated[
    int | None, Query(ge=1, le=1000, description="Page size; capped by the tier's maximum")
]


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


async def _serve(request: Request, origin_request: OriginRequest) -> Response:
    plane = public_plane(request)
    caller = pre_admitted(request.scope)
    if caller is not None:  # the shortcut took the budget and read the cache already
        decision = caller.decision
    else:
        # Limits are taken here, after validation, so the limiter's script can also read
        # the cached response in its one Redis round trip.
        prefetch = plane.cache_redis_key(origin_request)
        decision = await admit(request.scope, plane, origin_request.principal, prefetch=prefetch)
    prefetched = (decision.prefetched,) if decision.prefetch_done else None
    served = await plane.serve(origin_request, prefetched=prefetched)
    status, headers, body = served_response(served, request.headers.get("if-none-match"))
    response = Response(body, status)
    response.raw_headers = headers
    return response


def property_request(parcel_id: str, principal: Principal, request_id: str) -> OriginRequest:
    """The origin request for one parcel's current record (route and shortcut alike)."""
    return OriginRequest(
        route="property",
        path=f"/v1/properties/{parcel_id}",
        query=(),
        principal=principal,
        request_id=request_id,
        parcel_id=parcel_id,
    )


def _page_size(limit: int | None, cap: int) -> int:
    return min(limit or min(20, cap), cap)


@router.get("/search", summary="Search parcels")
async def search(
    request: Request,
    principal: Annotated[Principal, authorized(Scope.PROPERTIES_READ)],
    state: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$")] = None,
    county: Annotated[
        str | None, Query(min_length=1, max_length=64, pattern=r"^[\w .'-]+$")
    ] = None,
    lien_status: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
    min_amount: Annotated[
        Decimal | None, Query(ge=0, le=10**12, max_digits=16, decimal_places=2)
    ] = None,
    max_amount: Annotated[
        Decimal | None, Query(ge=0, le=10**12, max_digits=16, decimal_places=2)
    ] = None,
    q: Annotated[
        str | None, Query(min_length=2, max_length=100, description="Address or owner")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Response:
    """Parcels matching every filter, ordered by parcel id, one page at a time."""
    if min_amount is not None and max_amount is not None and min_amount > max_amount:
        raise invalid_field("query", "min_amount", msg="must not exceed max_amount")
    filters = SearchFilters(
        state=state.upper() if state else None,
        county=county.strip() if county else None,
        lien_status=lien_status,
        min_amount=min_amount,
        max_amount=max_amount,
        q=q.strip() if q else None,
    )
    size = _page_size(limit, principal.tier.max_page_size)
    query = {
        "state": filters.state,
        "county": filters.county,
        "lien_status": filters.lien_status,
        "min_amount": None if min_amount is None else str(min_amount),
        "max_amount": None if max_amount is None else str(max_amount),
        "q": filters.q,
        "limit": str(size),
        "cursor": cursor,
    }
    origin_request = OriginRequest(
        route="search",
        path="/v1/properties/search",
        query=tuple(sorted((k, v) for k, v in query.items() if v is not None)),
        principal=principal,
        request_id=_request_id(request),
        filters=filters,
        cursor=cursor,
        limit=size,
    )
    return await _serve(request, origin_request)


@router.get("/{parcel_id}", summary="One parcel's current record")
async def get_property(
    request: Request,
    principal: Annotated[Principal, authorized(Scope.PROPERTIES_READ)],
    parcel_id: ParcelId,
) -> Response:
    """The current record of a parcel."""
    return await _serve(request, property_request(parcel_id, principal, _request_id(request)))


@router.get("/{parcel_id}/history", summary="One parcel's accepted results, oldest first")
async def get_history(
    request: Request,
    principal: Annotated[Principal, authorized(Scope.PROPERTIES_READ)],
    parcel_id: ParcelId,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Response:
    """A page of a parcel's history."""
    size = _page_size(limit, principal.tier.max_page_size)
    query = [("limit", str(size))] + ([("cursor", cursor)] if cursor else [])
    origin_request = OriginRequest(
        route="history",
        path=f"/v1/properties/{parcel_id}/history",
        query=tuple(sorted(query)),
        principal=principal,
        request_id=_request_id(request),
        parcel_id=parcel_id,
        cursor=cursor,
        limit=size,
    )
    return await _serve(request, origin_request)


def property_route() -> APIRoute:
    """The route object of `GET /v1/properties/{parcel_id}` (for logs and metrics)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint is get_property:
            return route
    raise LookupError("get_property is not routed")
