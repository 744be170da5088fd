"""App factory for the party-internal port: party/document workers."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api.internal.plane import worker_plane_lifespan
from gateway.api.internal.routes import party_routers
from gateway.apps.builder import build_app
from gateway.audience import Audience
from gateway.resources import Resources


def create_party_internal_app(resources: Resources) -> FastAPI:
    """The party worker API (`/internal/...`)."""
    return build_app(
        audience=Audience.PARTY,
        resources=resources,
        title="Tax-lien gateway: party workers",
        routers=party_routers(),
        docs_enabled=resources.settings.internal_docs_enabled,
        lifespan=worker_plane_lifespan(Audience.PARTY),
    )
