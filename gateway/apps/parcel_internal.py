"""App factory for the parcel-internal port: parser workers."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api.internal.plane import worker_plane_lifespan
from gateway.api.internal.routes import parcel_routers
from gateway.apps.builder import build_app
from gateway.audience import Audience
from gateway.resources import Resources


def create_parcel_internal_app(resources: Resources) -> FastAPI:
    """The parcel worker API (`/internal/...`)."""
    return build_app(
        audience=Audience.PARCEL,
        resources=resources,
        title="Tax-lien gateway: parcel workers",
        routers=parcel_routers(),
        docs_enabled=resources.settings.internal_docs_enabled,
        lifespan=worker_plane_lifespan(Audience.PARCEL),
    )
