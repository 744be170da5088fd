"""Routers served on the public port."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.external.plane_routes import plane_routers
from gateway.api.info import info_router


def public_routers() -> list[APIRouter]:
    """Every router of the public audience, in include order."""
    return [info_router("/v1"), *plane_routers()]
