"""`/v1/admin/jobs`: every owner's jobs, forced states and cancels (admin role)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gateway.api.external.jobs import JobIdPath, parse_states
from gateway.api.external.jobs_deps import JobsPlaneDep
from gateway.api.external.public_deps import ActorDep, Caller
from gateway.api.external.requires import requires
from gateway.jobs.models import JobKind, JobList, JobOut, JobState
from gateway.public.permissions import Scope

router = APIRouter(prefix="/v1/admin", tags=["admin"])

Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f]+$")]


class ForceStateIn(BaseModel):
    """The state to force an open job into, and why (recorded on the job and its event)."""

    state: Literal["cancelled", "failed", "expired"]
    reason: Reason


class AdminCancelIn(BaseModel):
    """Why an admin cancels a job."""

    reason: Reason | None = None


def _reason(admin: Caller, reason: str | None) -> str:
    # Who forced it is part of the record: the reason an owner reads names the admin
    # (the credential used and, for a key, the user it belongs to).
    p = admin.principal
    who = (
        p.limit_key
        if p.user_uid is None or p.kind.value == "user"
        else (f"{p.limit_key} of user {p.user_uid}")
    )
    return f"{reason or 'cancelled by an admin'} (by {who})"


@router.get("/jobs", summary="Every owner's jobs, newest first (admin role)")
async def list_all_jobs(
    admin: Annotated[Caller, requires(Scope.ADMIN_READ)],
    plane: JobsPlaneDep,
    status: Annotated[str | None, Query(max_length=200)] = None,
    kind: JobKind | None = None,
    created_after: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JobList:
    """A page of all jobs, with their owners."""
    return await plane.service.list_jobs(
        None,
        states=parse_states(status),
        kind=kind,
        created_after=created_after,
        limit=limit,
        cursor=cursor,
    )


@router.get("/jobs/{job_id}", summary="Any job (admin role)")
async def get_any_job(
    job_id: JobIdPath, admin: Annotated[Caller, requires(Scope.ADMIN_READ)], plane: JobsPlaneDep
) -> JobOut:
    """One job of any owner."""
    return await plane.service.get(None, job_id)


@router.patch("/jobs/{job_id}", summary="Force an open job's state, with a reason (admin role)")
async def force_job_state(
    job_id: JobIdPath,
    body: ForceStateIn,
    admin: Annotated[Caller, requires(Scope.ADMIN_WRITE)],
    actor: ActorDep,
    plane: JobsPlaneDep,
) -> JobOut:
    """End the job as cancelled, failed or expired; its pending items take that outcome."""
    reason = _reason(admin, body.reason)
    return await plane.service.close(None, job_id, JobState(body.state), reason, actor=actor)


@router.post("/jobs/{job_id}/cancel", summary="Cancel any open job (admin role)")
async def admin_cancel_job(
    job_id: JobIdPath,
    admin: Annotated[Caller, requires(Scope.ADMIN_WRITE)],
    actor: ActorDep,
    plane: JobsPlaneDep,
    body: AdminCancelIn | None = None,
) -> JobOut:
    """Cancel a job of any owner."""
    reason = _reason(admin, body.reason if body else None)
    return await plane.service.cancel(None, job_id, reason, actor=actor)
