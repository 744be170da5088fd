"""What every app has in common: ops routes, problem handlers, middleware, metrics.

The three audience factories call `build_app` with their own routers; nothing else in an
app factory should need to know how the stack is assembled.

The stack, outermost first: the request context (request id, body limit, access log,
HTTP metrics, last-resort 500, `/health`, and the security headers every port sends),
the query-text guard (422 for a NUL in any query parameter, before anything reads it),
then the audience's own layers (`layers`), then Starlette's and FastAPI's stack
(server-error, exception and body-limit middleware, routing). Starlette would put its server-error
middleware outermost; ours goes outside it instead, so requests a front layer answers
(`/health`, a public cache hit) skip every framework layer, each of which costs a
coroutine frame per request and a wrapper per message sent.

Routing never redirects: Starlette's `redirect_slashes` answers `/v1/me/` with a bare
307 to `/v1/me` (no problem document, no security review of where it points); here an
unknown path, trailing slash or not, is a 404 problem on every port.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

import gateway
from gateway.api import ops
from gateway.api.middleware.query_text import QueryTextGuard
from gateway.api.middleware.request_context import RequestContextMiddleware
from gateway.api.middleware.security_headers import SecurityHeaders
from gateway.api.openapi import install_openapi, operation_id
from gateway.api.problems import install_problem_handlers
from gateway.core.audience import Audience
from gateway.core.observability.http_metrics import HttpMetrics
from gateway.core.resources import Resources
from gateway.kit.plane import Plane, running


class GatewayApp(FastAPI):
    """FastAPI with the gateway's layers outside Starlette's own (see the module docstring)."""

    front: Sequence[Middleware] = ()

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        # Requests go straight to the built stack: FastAPI's and Starlette's `__call__`
        # only add the telemetry check (off: see `build_app`) and two coroutine frames.
        stack = self.middleware_stack
        if stack is not None and scope["type"] == "http" and not self.root_path:
            scope["app"] = self
            return stack(scope, receive, send)
        return super().__call__(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for layer in reversed(self.front):
            app = layer.cls(app, *layer.args, **layer.kwargs)
        return app


def build_app(
    *,
    audience: Audience,
    resources: Resources,
    title: str,
    routers: Sequence[APIRouter],
    docs_enabled: bool = True,
    planes: Sequence[Plane] = (),
    layers: Sequence[Middleware] = (),
    body_limits: Mapping[str, int] | None = None,
) -> FastAPI:
    """Assemble one audience's ASGI app around the shared resources.

    `planes` are the capabilities this port runs (`gateway/kit/plane.py`), already built
    from `resources`: started in order before the port serves, stopped in reverse after,
    and reached by routes as `app.state.planes[name]`.
    `layers` are pure ASGI layers between the request context and FastAPI's stack
    (outermost first), e.g. CORS or a shortcut for hot requests.
    `body_limits` overrides MAX_BODY_BYTES for the routes at these exact paths.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(planes):
            yield

    # FASTPATH=off: stock FastAPI, our layers added as ordinary middleware (inside
    # Starlette's server-error middleware, as any app's would be).
    app_class = GatewayApp if resources.settings.fastpath else FastAPI
    app = app_class(
        lifespan=lifespan,
        title=title,
        version=gateway.__version__,
        openapi_url="/openapi.json" if docs_enabled else None,
        docs_url="/docs" if docs_enabled else None,
        redoc_url=None,
        redirect_slashes=False,
        generate_unique_id_function=operation_id,
        # FastAPI's OpenTelemetry bridge checks the environment and the global providers
        # on every request (about a quarter of the /health cost); tracing is not wired.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.resources = resources
    app.state.audience = audience
    app.state.planes = {plane.name: plane for plane in planes}
    install_problem_handlers(app)
    # The documents describe the problem answers, credentials and idempotency keys too.
    install_openapi(app, audience, anonymous=resources.settings.anonymous_tier is not None)
    http_metrics = HttpMetrics(resources.metrics.registry(audience))
    for router in (ops.router, *routers):
        app.include_router(router)
        # Read from the routers, not `app.routes`: FastAPI wraps included routers there.
        # Routers carry their prefix in each route's path and include no others.
        for route in router.routes:
            if isinstance(route, APIRoute):
                for method in sorted(route.methods or ()):
                    http_metrics.declare(route.path, method)

    front = [
        # The one middleware: request id, body limit, log line, HTTP metrics, last-resort 500.
        # Every port sends the same security headers, even on a 500 or a CORS preflight.
        Middleware(
            RequestContextMiddleware,
            audience=audience,
            max_body_bytes=resources.settings.max_body_bytes,
            metrics=http_metrics,
            response_headers=SecurityHeaders(),
            body_limits=body_limits,
        ),
        Middleware(QueryTextGuard),
        *layers,
    ]
    if isinstance(app, GatewayApp):
        app.front = front
    else:
        for layer in reversed(front):
            app.add_middleware(layer.cls, *layer.args, **layer.kwargs)
    return app
