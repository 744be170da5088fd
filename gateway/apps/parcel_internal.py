"""App factory for the parcel-internal port: parser workers."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api.internal import parcel
from gateway.apps.internal import build_internal_app
from gateway.core.audience import Audience
from gateway.core.resources import Resources


def create_parcel_internal_app(resources: Resources) -> FastAPI:
    """The parcel worker API (`/internal/...`)."""
    return build_internal_app(
        resources,
        Audience.PARCEL,
        title="Tax-lien gateway: parcel workers",
        routers=parcel.routers(),
    )
