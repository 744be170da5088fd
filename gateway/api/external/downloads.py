"""Download routes: issue a signed link, revoke links, and stream a job's results.

`GET /v1/downloads/{token}` takes no auth header on purpose (a browser follows the
link): the token is the credential, checked by the service, and the route never logs it
(the request log names the route template, not the path). It is not run through the
rate limiter either: a download is bounded by the per-process concurrency cap instead,
which is what protects the database pool.

The body streams after the headers, so a failure half-way cannot become a problem
response any more: the route logs it (job id only) and ends the response unfinished,
which the client sees as a truncated transfer, never as a complete file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, ConfigDict
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.api.external.jobs_deps import JobsPlaneDep, OwnerDep
from gateway.api.external.public_deps import Caller
from gateway.api.external.requires import requires
from gateway.api.permissions import declared
from gateway.jobs.downloads import Download
from gateway.public.permissions import LINK
from gateway.public.permissions import Scope as Needs

router = APIRouter(prefix="/v1", tags=["jobs"])
log = structlog.get_logger("gateway.api.downloads")

_NO_STORE = {"Cache-Control": "no-store"}


class DownloadIn(BaseModel):
    """`POST /v1/jobs/{id}/download` body (optional: CSV by default)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "ndjson"] = "csv"


class DownloadLinkOut(BaseModel):
    """A signed link, usable without credentials until `expires_at`."""

    url: str
    expires_at: datetime
    format: Literal["csv", "ndjson"]


class DownloadResponse(StreamingResponse):
    """Streams a `Download` and always releases it, however the stream ended."""

    def __init__(self, download: Download) -> None:
        super().__init__(
            download.chunks,
            media_type=download.media_type,
            headers={
                "Content-Disposition": f'attachment; filename="{download.filename}"',
                **_NO_STORE,
            },
        )
        self.download = download

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the body; on any failure after the headers, end the response unfinished."""
        try:
            await super().__call__(scope, receive, send)
        except (ClientDisconnect, OSError):
            pass  # the client went away: nothing to answer, only to release
        except Exception as exc:
            # Re-raising would have the request log print the path, which holds the token.
            log.warning("download_failed", file=self.download.filename, error=type(exc).__name__)
        finally:
            await self.download.aclose()


@router.post(
    "/jobs/{job_id}/download",
    summary="A signed, expiring link to the job's results (CSV or NDJSON)",
)
async def issue_download(
    _allowed: Annotated[Caller, requires(Needs.JOBS_READ)],
    job_id: str,
    owner: OwnerDep,
    plane: JobsPlaneDep,
    request: Request,
    response: Response,
    body: Annotated[DownloadIn | None, Body()] = None,
) -> DownloadLinkOut:
    """Issue a download link for one of the caller's jobs."""
    fmt = (body or DownloadIn()).format
    link = await plane.downloads.issue(owner, job_id, fmt)
    response.headers.update(_NO_STORE)
    return DownloadLinkOut(
        url=str(request.base_url).rstrip("/") + link.path,
        expires_at=link.expires_at,
        format=link.format,
    )


@router.post(
    "/jobs/{job_id}/download/revoke",
    status_code=204,
    summary="Revoke every download link issued so far for the job",
)
async def revoke_downloads(
    _allowed: Annotated[Caller, requires(Needs.JOBS_WRITE)],
    job_id: str,
    owner: OwnerDep,
    plane: JobsPlaneDep,
) -> Response:
    """Make every earlier link of the caller's job answer 410."""
    await plane.downloads.revoke(owner, job_id)
    return Response(status_code=204)


@router.get(
    "/downloads/{token}",
    summary="Stream a job's results (no auth header: the signed token is the credential)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
)
async def download(
    _link: Annotated[None, declared(LINK)], token: str, plane: JobsPlaneDep
) -> DownloadResponse:
    """Stream the rows a signed link grants (403 tampered, 410 expired or revoked)."""
    return DownloadResponse(await plane.downloads.open(token))
