"""App factory for the party-internal port: party/document workers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from gateway.api.internal.plane import worker_plane_lifespan
from gateway.api.internal.routes import party_routers
from gateway.apps.builder import build_app
from gateway.audience import Audience
from gateway.resources import Resources
from gateway.services.proxy_pool.upkeep import proxy_upkeep


def create_party_internal_app(resources: Resources) -> FastAPI:
    """The party worker API (`/internal/...`)."""

    worker_plane = worker_plane_lifespan(Audience.PARTY)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with worker_plane(app), proxy_upkeep(resources, Audience.PARTY):
            yield

    return build_app(
        audience=Audience.PARTY,
        resources=resources,
        title="Tax-lien gateway: party workers",
        routers=party_routers(),
        docs_enabled=resources.settings.internal_docs_enabled,
        lifespan=lifespan,
    )
