"""What every app has in common: ops routes, problem handlers, middleware, metrics.

The three audience factories call `build_app` with their own routers; nothing else in an
app factory should need to know how the stack is assembled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware

import gateway
from gateway.api import ops
from gateway.api.problems import install_problem_handlers
from gateway.audience import Audience
from gateway.middleware.request_context import RequestContextMiddleware
from gateway.observability.http_metrics import HttpMetrics
from gateway.resources import Resources


def build_app(
    *,
    audience: Audience,
    resources: Resources,
    title: str,
    routers: Sequence[APIRouter],
    docs_enabled: bool = True,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    shortcuts: Sequence[Middleware] = (),
) -> FastAPI:
    """Assemble one audience's ASGI app around the shared resources.

    `lifespan` runs the audience's background jobs (e.g. a lease reaper); it must not
    open pools of its own: the shared ones are on `app.state.resources`. `shortcuts` are
    pure ASGI layers between the request context and FastAPI's routing, for hot requests
    that can be answered without it (outermost first).
    """
    app = FastAPI(
        lifespan=lifespan,
        title=title,
        version=gateway.__version__,
        openapi_url="/openapi.json" if docs_enabled else None,
        docs_url="/docs" if docs_enabled else None,
        redoc_url=None,
        # FastAPI's OpenTelemetry bridge checks the environment and the global providers
        # on every request (about a quarter of the /health cost); tracing is not wired.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.resources = resources
    app.state.audience = audience
    install_problem_handlers(app)
    app.include_router(ops.router)
    for router in routers:
        app.include_router(router)

    # add_middleware wraps what was added before, so the first shortcut ends up outermost.
    for shortcut in reversed(shortcuts):
        app.add_middleware(shortcut.cls, *shortcut.args, **shortcut.kwargs)
    # The one middleware: request id, body limit, log line, HTTP metrics, last-resort 500.
    app.add_middleware(
        RequestContextMiddleware,
        audience=audience,
        max_body_bytes=resources.settings.max_body_bytes,
        metrics=HttpMetrics(resources.metrics.registry(audience)),
    )
    return app
