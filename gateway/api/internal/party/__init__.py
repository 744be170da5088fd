"""Routers of the party-internal port (party/document workers).

The handlers are shared with the other worker port (`gateway/api/internal/`): each port
mounts them over its own worker plane, queue, tokens and result tables.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.info import info_router
from gateway.api.internal import heartbeat, proxies, work


def routers() -> list[APIRouter]:
    """Routers of the party-internal port."""
    return [info_router("/internal"), work.router, heartbeat.router, proxies.router]
