"""Fresh cache hits of `GET /v1/properties/{parcel_id}`, answered in front of FastAPI.

The hottest request of the public port is a cache hit for one parcel. Through FastAPI
it cost ~440 µs of CPU, of which routing, dependency solving and parameter validation
were about half; the work the hit needs (authenticate, one limiter round trip that
also reads the cached entry, headers) is far less. This layer sits inside the request
context middleware (so request id, access log, HTTP metrics and security headers stay
as for every request) and does exactly the route's steps for the one case it can finish
alone:

1. the request is `GET /v1/properties/<id>` with an id the route would accept
   (`PARCEL_ID_PATTERN`, the route's own pattern), and the cache is on;
2. the caller authenticates (`Authenticator` over `Credentials.from_raw`, as the route's
   dependency does, so two `X-API-Key` headers are refused here too); a
   failure is answered here as the same problem document (the failure was counted
   once, so handing it on would count it twice);
3. the limiter admits the request and returns the cached entry in the same script
   (`admit`, as the route does); a 429 is answered here;
4. the entry is fresh: the response is built by `served_response`, as the route does.

Anything else is handed to FastAPI untouched, or, once budget was taken (a miss, a
stale entry), with the admitted caller in the request state so the route neither
authenticates nor takes budget again (`PRE_ADMITTED_STATE`). Exactly one limiter call
per request either way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.external.properties import PARCEL_ID_PATTERN, property_request
from gateway.api.external.public_deps import PRE_ADMITTED_STATE, Caller, admit, client_ip_of
from gateway.api.external.served import served_response
from gateway.api.permissions import permission_of
from gateway.api.problems import send_problem
from gateway.core.errors import GatewayError
from gateway.public.authenticate import Credentials
from gateway.public.permissions import check
from gateway.public.plane import PublicPlane

_PREFIX = "/v1/properties/"
_PARCEL_ID = re.compile(PARCEL_ID_PATTERN)
# Routes declared before `/{parcel_id}` whose paths would also match the id pattern.
_OTHER_ROUTES = frozenset({"search"})
_WANTED = frozenset({b"if-none-match", b"x-forwarded-for"})


def _headers(scope: Scope) -> dict[str, str]:
    """The few non-credential headers this path reads (first occurrence, like Starlette);
    credentials are read by `Credentials.from_raw`, which keeps every occurrence."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _WANTED:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


class PropertyHitShortcut:
    """ASGI layer serving fresh cache hits of one parcel; see the module docstring."""

    def __init__(self, app: ASGIApp, *, plane: PublicPlane, route: BaseRoute) -> None:
        self.app = app
        self.plane = plane
        # Reported as the matched route, so logs and metrics name the template.
        self.route = route
        # What the route declares (`gateway/api/permissions.py`), checked here the same.
        need = permission_of(route).scope
        if need is None:
            raise ValueError("the property route must declare a scope")
        self.need = need

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function returning a coroutine: requests passed on get no extra frame.
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(_PREFIX)
            or not self.plane.cache.enabled
        ):
            return self.app(scope, receive, send)
        parcel_id = scope["path"][len(_PREFIX) :]
        if parcel_id in _OTHER_ROUTES or not _PARCEL_ID.match(parcel_id):
            return self.app(scope, receive, send)
        return self._serve(scope, receive, send, parcel_id)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, parcel_id: str) -> None:
        plane = self.plane
        headers = _headers(scope)
        state: dict[str, Any] = scope["state"]
        request_id = str(state.get("request_id", ""))
        try:
            ip = client_ip_of(headers, scope.get("client"), plane)
            credentials = Credentials.from_raw(scope["headers"])
            principal = await plane.authenticator.authenticate(credentials, ip)
            check(principal, self.need)
            origin_request = property_request(parcel_id, principal, request_id)
            decision = await admit(
                scope, plane, principal, prefetch=plane.cache_redis_key(origin_request)
            )
        except GatewayError as error:
            scope["route"] = self.route
            await send_problem(send, error, instance=scope["path"], request_id=request_id)
            return
        served = plane.cache.fresh_hit(decision.prefetched) if decision.prefetch_done else None
        if served is None:
            state[PRE_ADMITTED_STATE] = Caller(principal, decision)
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        status, raw_headers, body = served_response(served, headers.get("if-none-match"))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
