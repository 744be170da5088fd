"""FastAPI dependencies shared by every router.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a worker
thread, which for a one-line attribute lookup costs more than the whole request.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.core.settings import Settings


async def get_resources(request: Request) -> Resources:
    """The process's shared resources, attached to every app at build time."""
    resources: Resources = request.app.state.resources
    return resources


async def get_audience(request: Request) -> Audience:
    """The audience of the port serving this request."""
    audience: Audience = request.app.state.audience
    return audience


async def get_settings(request: Request) -> Settings:
    """The process settings."""
    resources: Resources = request.app.state.resources
    return resources.settings


def plane_of(request: Request, name: str) -> Any:
    """The plane `name` of the app serving `request` (see `gateway/kit/plane.py`)."""
    return request.app.state.planes[name]


ResourcesDep = Annotated[Resources, Depends(get_resources)]
AudienceDep = Annotated[Audience, Depends(get_audience)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
