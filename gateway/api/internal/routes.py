"""Routers served on the internal (worker) ports."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.info import info_router
from gateway.api.internal import proxies, work


def parcel_routers() -> list[APIRouter]:
    """Routers of the parcel-internal port."""
    return [info_router("/internal"), work.router, proxies.router]


def party_routers() -> list[APIRouter]:
    """Routers of the party-internal port."""
    return [info_router("/internal"), work.router, proxies.router]
