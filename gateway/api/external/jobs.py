"""`/v1/jobs`: submit, follow, page through and cancel client jobs (thin: the service
in `gateway/jobs/service.py` holds the logic)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from gateway.api.external.jobs_deps import JobsPlaneDep, OwnerDep
from gateway.api.external.public_deps import Caller
from gateway.api.external.requires import requires
from gateway.jobs.models import (
    ItemList,
    ItemState,
    JobCreated,
    JobIn,
    JobKind,
    JobList,
    JobOut,
    JobState,
)
from gateway.jobs.owner import Owner
from gateway.jobs.plane import JobsPlane
from gateway.jobs.spec import JobSpec, spec_from_body
from gateway.kit.field_errors import invalid_field
from gateway.public.permissions import Scope

router = APIRouter(prefix="/v1", tags=["jobs"])

JobIdPath = Annotated[str, Path(pattern=r"^job_[0-9a-f]{24}$", description="The job id")]
_NO_STORE = {"Cache-Control": "no-store"}


async def spec_of(plane: JobsPlane, owner: Owner, body: JobIn) -> JobSpec:
    """Validate a submission body into a spec (422 listing bad items by index)."""
    known = await plane.service.known_platforms(body.kind)
    return spec_from_body(body, known, max_items=owner.tier.max_job_items, where=["body"])


def page_size(owner: Owner, limit: int | None) -> int:
    """The requested page size, capped by the tier's."""
    cap = owner.tier.max_page_size
    return cap if limit is None else min(limit, cap)


@router.post("/jobs", status_code=201, summary="Submit a job: refresh these parcels or parties")
async def submit_job(
    _allowed: Annotated[Caller, requires(Scope.JOBS_WRITE)],
    body: JobIn,
    owner: OwnerDep,
    plane: JobsPlaneDep,
    response: Response,
) -> JobCreated:
    """Queue (or attach to already queued) tasks for every item; 201 with the estimate."""
    spec = await spec_of(plane, owner, body)
    created = await plane.service.submit(owner, spec)
    response.headers["Location"] = f"/v1/jobs/{created.id}"
    response.headers.update(_NO_STORE)
    return created


@router.get("/jobs", summary="The caller's jobs, newest first")
async def list_jobs(
    _allowed: Annotated[Caller, requires(Scope.JOBS_READ)],
    owner: OwnerDep,
    plane: JobsPlaneDep,
    response: Response,
    status: Annotated[
        str | None,
        Query(
            description="Comma-separated states (queued, running, completed, ...)",
            max_length=200,
        ),
    ] = None,
    kind: JobKind | None = None,
    created_after: datetime | None = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JobList:
    """A page of the caller's jobs; follow `next_cursor` for the next one."""
    response.headers.update(_NO_STORE)
    return await plane.service.list_jobs(
        owner,
        states=parse_states(status),
        kind=kind,
        created_after=created_after,
        limit=page_size(owner, limit),
        cursor=cursor,
    )


def parse_states(status: str | None) -> list[JobState] | None:
    """`status=queued,running` as states (422 naming an unknown one)."""
    if not status:
        return None
    states: list[JobState] = []
    for name in (s.strip() for s in status.split(",") if s.strip()):
        try:
            state = JobState(name)
        except ValueError:
            raise invalid_field("query", "status", msg=f"unknown state {name[:40]!r}") from None
        if state is JobState.SUBMITTING:
            raise invalid_field("query", "status", msg="unknown state 'submitting'")
        states.append(state)
    return states


@router.get("/jobs/{job_id}", summary="A job's state, progress, timings and credits")
async def get_job(
    _allowed: Annotated[Caller, requires(Scope.JOBS_READ)],
    job_id: JobIdPath,
    owner: OwnerDep,
    plane: JobsPlaneDep,
    response: Response,
) -> JobOut:
    """One of the caller's jobs (404 for anyone else's)."""
    response.headers.update(_NO_STORE)
    return await plane.service.get(owner, job_id)


@router.get("/jobs/{job_id}/items", summary="A job's items: state, attempts, last error")
async def job_items(
    _allowed: Annotated[Caller, requires(Scope.JOBS_READ)],
    job_id: JobIdPath,
    owner: OwnerDep,
    plane: JobsPlaneDep,
    response: Response,
    status: ItemState | None = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> ItemList:
    """A page of the job's items by index; follow `next_cursor`."""
    response.headers.update(_NO_STORE)
    return await plane.service.items(
        owner, job_id, state=status, limit=page_size(owner, limit), cursor=cursor
    )


@router.post("/jobs/{job_id}/cancel", summary="Cancel an unfinished job")
async def cancel_job(
    _allowed: Annotated[Caller, requires(Scope.JOBS_WRITE)],
    job_id: JobIdPath,
    owner: OwnerDep,
    plane: JobsPlaneDep,
) -> JobOut:
    """Pending items are cancelled and their tasks let go (409 if the job finished)."""
    return await plane.service.cancel(owner, job_id)
