"""The leased-work protocol: enqueue, lease (long-poll), results (heartbeat: heartbeat.py).

Routers stay thin: parse, call the worker plane, shape the answer. The protocol and its
guarantees are described in `gateway.work.queue` and `...results`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import TypeAdapter, ValidationError

from gateway.api.internal.auth import ProducerDep, WorkerDep
from gateway.api.internal.plane import WorkerPlaneDep
from gateway.core.observability.log_context import bind_worker
from gateway.kit.field_errors import invalid_field
from gateway.work.holder import LeaseHolder, report_refused
from gateway.work.models import (
    EnqueueRequest,
    EnqueueResponse,
    Platform,
    ResultsRequest,
    ResultsResponse,
    WorkerId,
    WorkResponse,
)

router = APIRouter(prefix="/internal", tags=["work"])

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown, revoked or other-audience token"},
    503: {"description": "Redis or PostgreSQL unavailable; retry after `Retry-After`"},
}


def _check_batch(field: str, count: int, limit: int) -> None:
    """422 for a batch over the configured size."""
    if count > limit:
        raise invalid_field(
            "body", field, msg=f"at most {limit} {field} per request", type="too_long"
        )


@router.post("/tasks", summary="Enqueue tasks (producer tokens)", responses=AUTH_ERRORS)
async def enqueue(body: EnqueueRequest, plane: WorkerPlaneDep, _: ProducerDep) -> EnqueueResponse:
    """Enqueue a batch; a (platform, key) already queued or leased counts as a duplicate."""
    _check_batch("tasks", len(body.tasks), plane.settings.enqueue_max_batch)
    outcome = await plane.enqueue(body.tasks)
    new = sum(outcome.new)
    return EnqueueResponse(
        enqueued=new, duplicates=len(outcome.new) - new, task_ids=outcome.task_ids
    )


_PLATFORMS = TypeAdapter(list[Platform])


def _platforms(raw: str) -> list[str]:
    names = [p.strip() for p in raw.split(",") if p.strip()]
    try:
        platforms = _PLATFORMS.validate_python(names)
    except ValidationError as exc:
        raise invalid_field(
            "query", "platforms", msg="comma-separated platform names ([a-z0-9_-], up to 64 chars)"
        ) from exc
    if not platforms or len(platforms) > 100:
        raise invalid_field("query", "platforms", msg="name 1 to 100 platforms")
    return list(dict.fromkeys(platforms))


@router.get("/work", summary="Lease tasks, waiting up to `wait` seconds", responses=AUTH_ERRORS)
async def work(
    plane: WorkerPlaneDep,
    principal: WorkerDep,
    worker_id: Annotated[WorkerId, Query()],
    platforms: Annotated[str, Query(max_length=6500)],
    limit: Annotated[int, Query(ge=1)] = 1,
    wait: Annotated[float, Query(ge=0)] = 0.0,
) -> WorkResponse:
    """Lease up to `limit` tasks (capped at WORK_MAX_LIMIT, and lowered to keep the
    answer within LEASE_MAX_BATCH_BYTES); long-polls up to `wait` seconds (capped at
    WORK_MAX_WAIT_S) when nothing is ready. The leases are bound to this token and
    `worker_id`."""
    bind_worker(worker_id)
    names = _platforms(platforms)
    batch = await plane.lease(
        LeaseHolder(principal.token_id, worker_id),
        names,
        min(limit, plane.settings.work_max_limit),
        min(wait, plane.settings.work_max_wait_s),
    )
    return WorkResponse(tasks=batch.tasks)


@router.post(
    "/results",
    summary="Report results of leased tasks",
    responses=AUTH_ERRORS,
    response_model_exclude_none=True,
)
async def results(
    body: ResultsRequest, plane: WorkerPlaneDep, principal: WorkerDep
) -> ResultsResponse:
    """Commit succeeded results, requeue or dead-letter failed ones; per-item outcomes.
    Only the holder of a lease (this token and `worker_id`) may report its result."""
    bind_worker(body.worker_id)
    _check_batch("results", len(body.results), plane.settings.results_max_batch)
    holder = LeaseHolder(principal.token_id, body.worker_id)
    outcomes = await plane.results.submit(holder, body.results)
    refused = [o.lease_id or "" for o in outcomes if o.reason == "not_lease_holder"]
    report_refused(plane.metrics, "result", holder, refused)
    return ResultsResponse(
        accepted=sum(o.outcome == "accepted" for o in outcomes),
        duplicate=sum(o.outcome == "duplicate" for o in outcomes),
        rejected=sum(o.outcome == "rejected" for o in outcomes),
        results=outcomes,
    )
