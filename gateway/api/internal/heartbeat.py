"""`POST /internal/heartbeat`: shared by both worker ports (each with its own plane)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.internal.auth import WorkerDep
from gateway.api.internal.plane import WorkerPlaneDep
from gateway.api.internal.work import AUTH_ERRORS
from gateway.core.observability.log_context import bind_worker
from gateway.work.models import HeartbeatRequest, HeartbeatResponse

router = APIRouter(prefix="/internal", tags=["work"])


@router.post(
    "/heartbeat", summary="Register the worker and extend its leases", responses=AUTH_ERRORS
)
async def heartbeat(
    body: HeartbeatRequest, plane: WorkerPlaneDep, principal: WorkerDep
) -> HeartbeatResponse:
    """Extend the leases the worker still holds; tell it which are lost and what to do."""
    bind_worker(body.worker_id)
    beat = await plane.registry.heartbeat(body, principal.name)
    return HeartbeatResponse(
        extended=beat.extended,
        lost=beat.lost,
        command=beat.command,
        heartbeat_interval_s=plane.settings.heartbeat_interval_for(body.platforms),
    )
