"""App factory for the public port: SSR site and mobile apps."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api.external.routes import public_routers
from gateway.apps.builder import build_app
from gateway.audience import Audience
from gateway.resources import Resources


def create_public_app(resources: Resources) -> FastAPI:
    """The public API (`/v1/...`)."""
    return build_app(
        audience=Audience.PUBLIC,
        resources=resources,
        title="Tax-lien gateway: public API",
        routers=public_routers(),
    )
