"""Admin-only endpoints of the public port."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from gateway.api.external.public_deps import ActorDep, Caller, PlaneDep
from gateway.api.external.requires import requires
from gateway.public.permissions import Scope

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class PurgeIn(BaseModel):
    """Which cached responses to drop: a glob over `/path?query#tier`."""

    pattern: str = Field(default="*", min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")


class PurgeOut(BaseModel):
    """How many cached responses were dropped."""

    purged: int


@router.post("/cache/purge", summary="Purge cached responses (admin role)")
async def purge_cache(
    body: PurgeIn,
    admin: Annotated[Caller, requires(Scope.ADMIN_WRITE)],
    actor: ActorDep,
    plane: PlaneDep,
) -> PurgeOut:
    """Delete cached responses matching the pattern, in every gateway process."""
    return PurgeOut(purged=await plane.cache.purge(body.pattern, actor=actor))
