"""`GET .../info`: which audience a port serves, the gateway version and server time.

Workers and clients call it to check they are talking to the right port and to measure
clock skew against lease expiry times, which the gateway states in its own clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel

import gateway
from gateway.api.deps import AudienceDep
from gateway.api.permissions import declared
from gateway.public.permissions import PUBLIC


class InfoResponse(BaseModel):
    """Identity of the serving port."""

    audience: str
    version: str
    server_time: datetime


def info_router(prefix: str) -> APIRouter:
    """An info route under an audience's prefix (`/v1` or `/internal`)."""
    router = APIRouter(prefix=prefix, tags=["info"])

    @router.get("/info", summary="Audience, version and server time of this port")
    async def info(
        audience: AudienceDep, _public: Annotated[None, declared(PUBLIC)]
    ) -> InfoResponse:
        """Identify the port."""
        return InfoResponse(
            audience=audience.value, version=gateway.__version__, server_time=datetime.now(UTC)
        )

    return router
