"""A validated job submission, whatever brought it (JSON body, upload, batch)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.jobs.items import validate_items
from gateway.jobs.models import Item, JobIn, JobKind


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


def spec_from_body(
    body: JobIn, known_platforms: Collection[str], *, max_items: int, where: list[str | int]
) -> JobSpec:
    """Validate a `POST /v1/jobs` body (also one spec of a batch) into a spec; item errors
    are located under `[*where, "items", index]`."""
    items, duplicates = validate_items(
        body.kind,
        enumerate(body.items),
        known_platforms,
        max_items=max_items,
        locate=lambda i: [*where, "items", i],
        where=[*where, "items"],
    )
    return JobSpec(
        kind=body.kind,
        items=items,
        duplicates=duplicates,
        priority=body.priority,
        deadline=body.deadline,
        label=body.label,
        webhook=body.webhook,
    )
