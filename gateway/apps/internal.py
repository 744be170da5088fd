"""What the two worker ports share: the worker plane and proxy upkeep in the lifespan.

The parcel and party ports serve the same protocol over separate queues, tokens and
tables; only the audience, the title and the router list differ.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI

from gateway.api.internal.plane import worker_plane_lifespan
from gateway.apps.builder import build_app
from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.proxy_pool.upkeep import proxy_upkeep


def build_internal_app(
    resources: Resources, audience: Audience, *, title: str, routers: list[APIRouter]
) -> FastAPI:
    """One worker port's app, with its background jobs in the lifespan."""
    worker_plane = worker_plane_lifespan(audience)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with worker_plane(app), proxy_upkeep(resources, audience):
            yield

    return build_app(
        audience=audience,
        resources=resources,
        title=title,
        routers=routers,
        docs_enabled=resources.settings.internal_docs_enabled,
        lifespan=lifespan,
    )
