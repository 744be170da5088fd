"""A validated job submission, whatever brought it (JSON body, upload, batch)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.jobs.models import Item, JobKind


@dataclass(frozen=True)
class JobSpec:
    """Items are validated and unique per (platform, key); `duplicates` were merged."""

    kind: JobKind
    items: list[Item]
    duplicates: int = 0
    priority: int = 0
    deadline: datetime | None = None
    label: str | None = None
    webhook: Any = None
    upload_sha256: str | None = None
