"""Signed, expiring download links for a job's results, streamed from PostgreSQL.

Skeleton: implemented by the downloads work of issue 12; signatures are final.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gateway.core.resources import Resources
from gateway.jobs.owner import Owner

Format = Literal["csv", "ndjson"]


@dataclass(frozen=True)
class DownloadLink:
    """A signed URL path (`/v1/downloads/<token>`), when it expires, and its format."""

    path: str
    expires_at: datetime
    format: Format


@dataclass(frozen=True)
class Download:
    """An opened download: a file name, media type and the body's chunks."""

    filename: str
    media_type: str
    chunks: AsyncIterator[bytes]


class DownloadService:
    """Issues and serves download links."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    async def issue(self, owner: Owner, job_id: str, fmt: Format) -> DownloadLink:
        """A signed link to the owner's job results (404 for anyone else's job)."""
        raise NotImplementedError

    async def open(self, token: str) -> Download:
        """Verify a token (403 tampered, 410 expired or revoked) and stream its rows."""
        raise NotImplementedError
