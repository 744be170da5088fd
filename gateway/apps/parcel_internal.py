"""App factory for the parcel-internal port: parser workers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from gateway.api.internal.plane import worker_plane_lifespan
from gateway.api.internal.routes import parcel_routers
from gateway.apps.builder import build_app
from gateway.audience import Audience
from gateway.resources import Resources
from gateway.services.proxy_pool.upkeep import proxy_upkeep


def create_parcel_internal_app(resources: Resources) -> FastAPI:
    """The parcel worker API (`/internal/...`)."""

    worker_plane = worker_plane_lifespan(Audience.PARCEL)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with worker_plane(app), proxy_upkeep(resources, Audience.PARCEL):
            yield

    return build_app(
        audience=Audience.PARCEL,
        resources=resources,
        title="Tax-lien gateway: parcel workers",
        routers=parcel_routers(),
        docs_enabled=resources.settings.internal_docs_enabled,
        lifespan=lifespan,
    )
