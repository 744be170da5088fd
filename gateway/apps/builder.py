"""What every app has in common: ops routes, problem handlers, middleware, metrics.

The three audience factories call `build_app` with their own routers; nothing else in an
app factory should need to know how the stack is assembled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI
from prometheus_fastapi_instrumentator import Instrumentator

import gateway
from gateway.api import ops
from gateway.api.problems import install_problem_handlers
from gateway.audience import Audience
from gateway.middleware.request_context import RequestContextMiddleware
from gateway.resources import Resources

# Buckets fine enough to read p50/p95/p99 of a gateway that answers in milliseconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def build_app(
    *,
    audience: Audience,
    resources: Resources,
    title: str,
    routers: Sequence[APIRouter],
    docs_enabled: bool = True,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """Assemble one audience's ASGI app around the shared resources.

    `lifespan` runs the audience's background jobs (e.g. a lease reaper); it must not
    open pools of its own: the shared ones are on `app.state.resources`.
    """
    app = FastAPI(
        lifespan=lifespan,
        title=title,
        version=gateway.__version__,
        openapi_url="/openapi.json" if docs_enabled else None,
        docs_url="/docs" if docs_enabled else None,
        redoc_url=None,
    )
    app.state.resources = resources
    app.state.audience = audience
    install_problem_handlers(app)
    app.include_router(ops.router)
    for router in routers:
        app.include_router(router)

    Instrumentator(
        should_group_status_codes=False,
        registry=resources.metrics.registry(audience),
    ).instrument(app, latency_lowr_buckets=LATENCY_BUCKETS)
    # Added last so it wraps everything, including the metrics middleware.
    app.add_middleware(
        RequestContextMiddleware,
        audience=audience,
        max_body_bytes=resources.settings.max_body_bytes,
    )
    return app
