"""App factory for the party-internal port: party/document workers."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api.internal import party
from gateway.apps.internal import build_internal_app
from gateway.core.audience import Audience
from gateway.core.resources import Resources


def create_party_internal_app(resources: Resources) -> FastAPI:
    """The party worker API (`/internal/...`)."""
    return build_internal_app(
        resources,
        Audience.PARTY,
        title="Tax-lien gateway: party workers",
        routers=party.routers(),
    )
