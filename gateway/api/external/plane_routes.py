"""Routers of the public plane (properties, account, admin)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.external import account, admin, properties


def plane_routers() -> list[APIRouter]:
    """The public plane's routers, in include order."""
    return [properties.router, account.router, admin.router]
