"""`POST /internal/heartbeat`: shared by both worker ports (each with its own plane)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.internal.auth import WorkerDep
from gateway.api.internal.plane import WorkerPlaneDep
from gateway.api.internal.work import AUTH_ERRORS
from gateway.core.observability.log_context import bind_worker
from gateway.work.holder import LeaseHolder, report_refused
from gateway.work.models import HeartbeatRequest, HeartbeatResponse

router = APIRouter(prefix="/internal", tags=["work"])


@router.post(
    "/heartbeat", summary="Register the worker and extend its leases", responses=AUTH_ERRORS
)
async def heartbeat(
    body: HeartbeatRequest, plane: WorkerPlaneDep, principal: WorkerDep
) -> HeartbeatResponse:
    """Extend the leases the worker still holds; tell it which are lost and what to do.
    A lease held by another token or worker id is `lost` (and `not_holder`) to the caller
    and is not extended; so is one whose task nobody wants any more (`lost` and
    `cancelled`: the worker should stop working on it)."""
    bind_worker(body.worker_id)
    holder = LeaseHolder(principal.token_id, body.worker_id)
    beat = await plane.registry.heartbeat(body, holder, principal.name)
    report_refused(plane.metrics, "heartbeat", holder, beat.not_holder)
    return HeartbeatResponse(
        extended=beat.extended,
        lost=beat.lost,
        not_holder=beat.not_holder,
        cancelled=beat.cancelled,
        command=beat.command,
        heartbeat_interval_s=plane.settings.heartbeat_interval_for(body.platforms),
    )
