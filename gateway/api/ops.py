"""Ops endpoints served on every port: liveness, readiness, metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from gateway.api.deps import AudienceDep, ResourcesDep
from gateway.api.permissions import declared
from gateway.api.problems import PROBLEM_CONTENT_TYPE, problem_document
from gateway.core.errors import DependencyUnavailable
from gateway.core.observability.metrics import CONTENT_TYPE
from gateway.core.readiness import check_readiness
from gateway.public.permissions import PUBLIC

router = APIRouter(tags=["ops"])

# `GET /health` (liveness) is answered by the request-context middleware in front of the
# router; see gateway/api/middleware/request_context.py for why.


@router.get(
    "/ready",
    summary="Readiness: Redis and PostgreSQL reachable",
    responses={503: {"description": "A dependency is not reachable"}},
)
async def ready(
    request: Request, resources: ResourcesDep, _public: Annotated[None, declared(PUBLIC)]
) -> JSONResponse:
    """Readiness probe with per-dependency status; 503 names what failed."""
    results = await check_readiness(resources)
    checks: dict[str, Any] = {
        r.name: {"status": "ok" if r.ok else "fail", "latency_ms": r.latency_ms}
        | ({"error": r.error} if r.error else {})
        for r in results
    }
    # Reported, not checked: whether a Redis restart would lose queued work.
    checks["redis"]["persistence"] = resources.redis_persistence.as_dict()
    failing = [r.name for r in results if not r.ok]
    if failing:
        error = DependencyUnavailable(failing[0], f"Not ready: {', '.join(failing)} unavailable")
        body = problem_document(
            type_uri=error.type_uri,
            title=error.title,
            status=error.status,
            detail=error.detail,
            instance=request.url.path,
            request_id=getattr(request.state, "request_id", None),
            extra={"failing": failing, "checks": checks},
        )
        return JSONResponse(
            body, status_code=503, headers=error.headers, media_type=PROBLEM_CONTENT_TYPE
        )
    return JSONResponse({"status": "ok", "checks": checks})


@router.get("/metrics", include_in_schema=False)
async def metrics(
    resources: ResourcesDep, audience: AudienceDep, _public: Annotated[None, declared(PUBLIC)]
) -> Response:
    """Prometheus text exposition for this port's audience."""
    return Response(resources.metrics.render(audience), media_type=CONTENT_TYPE)
