"""Dependencies of the job routes: the jobs plane and the caller as a job owner."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.api.deps import plane_of
from gateway.api.external.public_deps import Caller, CallerDep
from gateway.core.errors import Forbidden
from gateway.jobs.owner import Owner
from gateway.jobs.plane import JobsPlane
from gateway.public.principal import PrincipalKind


async def get_jobs_plane(request: Request) -> JobsPlane:
    """The jobs plane of this app."""
    plane: JobsPlane = plane_of(request, JobsPlane.name)
    return plane


JobsPlaneDep = Annotated[JobsPlane, Depends(get_jobs_plane)]


def owner_of(caller: Caller) -> Owner:
    """The caller as a job owner; anonymous callers own no jobs (403)."""
    p = caller.principal
    if p.kind is PrincipalKind.ANONYMOUS:
        raise Forbidden("Jobs need an account: sign in or use an API key")
    return Owner(id=p.limit_key, tier=p.tier, is_admin=p.is_admin)


async def get_owner(caller: CallerDep) -> Owner:
    """The authenticated, admitted caller as a job owner."""
    return owner_of(caller)


OwnerDep = Annotated[Owner, Depends(get_owner)]
