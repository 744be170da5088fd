"""`/v1/jobs/upload` (a CSV or NDJSON file of items) and `/v1/jobs/batch` (several specs).

Thin: reading and checking an upload is `gateway/jobs/upload.py`, a batch's per-spec
outcomes `gateway/jobs/batch.py`. Mounted before the job routes so `/v1/jobs/upload` and
`/v1/jobs/batch` are never taken for a job id. The upload route reads the body itself
(a streaming multipart parser with its own byte count); the request context lets it be
as large as JOB_UPLOAD_MAX_BYTES (`body_limits` in the public app factory).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from gateway.api.external.jobs_deps import JobsPlaneDep, OwnerDep
from gateway.api.external.public_deps import Caller
from gateway.api.external.requires import requires
from gateway.api.problems import problem_document
from gateway.core.errors import GatewayError
from gateway.jobs.batch import BatchEntry, BatchIn, BatchOut, BatchResult, submit_batch
from gateway.jobs.models import JobCreated, JobOut
from gateway.jobs.upload import read_upload, submit_upload
from gateway.public.permissions import Scope

router = APIRouter(prefix="/v1", tags=["jobs"])

UPLOAD_PATH = "/v1/jobs/upload"
MATCH_HEADER = "Job-Match"
_NO_STORE = {"Cache-Control": "no-store"}

_UPLOAD_FORM: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "kind"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV with a header naming platform and "
                            "parcel_id (or party_id), or NDJSON: one item object per line",
                        },
                        "kind": {"type": "string", "enum": ["parcel_refresh", "party_refresh"]},
                        "priority": {"type": "integer", "minimum": -1000, "maximum": 1000},
                        "deadline": {"type": "string", "format": "date-time"},
                        "label": {"type": "string", "maxLength": 200},
                    },
                }
            }
        },
    }
}


@router.post(
    "/jobs/upload",
    status_code=201,
    response_model=JobCreated,
    summary="Submit a job from a CSV or NDJSON file of items",
    openapi_extra=_UPLOAD_FORM,
    responses={
        200: {
            "model": JobOut,
            "description": "The same file is already an unfinished job of yours "
            f"(header `{MATCH_HEADER}: upload-sha256=<hex>`); no new job",
        },
        413: {"description": "The upload exceeds JOB_UPLOAD_MAX_BYTES"},
        415: {"description": "Not multipart/form-data, or the file is not CSV/NDJSON text"},
        422: {"description": "Missing columns, bad rows (by line number), empty, over the cap"},
    },
)
async def upload_job(
    _allowed: Annotated[Caller, requires(Scope.JOBS_WRITE)],
    request: Request,
    owner: OwnerDep,
    plane: JobsPlaneDep,
) -> Response:
    """Read the file, validate every row, submit it as one job (201), or answer the open
    job this same content already made (200)."""
    upload = await read_upload(
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        request.stream(),
        max_bytes=plane.service.settings.job_upload_max_bytes,
    )
    outcome = await submit_upload(plane.service, owner, upload)
    location = f"/v1/jobs/{outcome.job.id}"
    headers = dict(_NO_STORE)
    if outcome.created:
        headers["Location"] = location
    else:
        headers[MATCH_HEADER] = f"upload-sha256={outcome.sha256}"
        headers["Content-Location"] = location
    return Response(
        outcome.job.model_dump_json(),
        status_code=201 if outcome.created else 200,
        headers=headers,
        media_type="application/json",
    )


def _result(entry: BatchEntry, request: Request) -> BatchResult:
    if entry.error is None:
        return BatchResult(index=entry.index, status=201, job=entry.job)
    error = entry.error
    problem = problem_document(
        type_uri=error.type_uri,
        title=error.title,
        status=error.status,
        detail=error.detail,
        instance=request.url.path,
        request_id=getattr(request.state, "request_id", None),
        extra={"index": entry.index, **error.extra},
    )
    return BatchResult(index=entry.index, status=error.status, problem=problem)


def _retry_after(errors: list[GatewayError]) -> str | None:
    waits = [int(e.headers["Retry-After"]) for e in errors if "Retry-After" in e.headers]
    return str(max(waits)) if waits else None


@router.post("/jobs/batch", summary="Submit several jobs, one outcome per job")
async def submit_job_batch(
    _allowed: Annotated[Caller, requires(Scope.JOBS_WRITE)],
    body: BatchIn,
    owner: OwnerDep,
    plane: JobsPlaneDep,
    request: Request,
    response: Response,
) -> BatchOut:
    """Each spec is validated and submitted on its own: 200 with a 201 or a problem per
    spec, in order (a 503 before any job was created fails the whole request)."""
    entries = await submit_batch(
        plane.service, owner, body.jobs, max_jobs=plane.service.settings.job_batch_max
    )
    results = [_result(e, request) for e in entries]
    errors = [e.error for e in entries if e.error is not None]
    response.headers.update(_NO_STORE)
    retry = _retry_after(errors)
    if retry is not None:
        # The longest wait any failed spec asked for (a 429 job-creation limit, a 503).
        response.headers["Retry-After"] = retry
    return BatchOut(results=results, created=len(entries) - len(errors), failed=len(errors))
