"""Shapes of the leased-work protocol, shared by the services and the HTTP layer.

Identifiers that end up inside Redis keys or metric labels (platforms, worker ids) are
restricted to a small alphabet and length, so a client cannot forge key separators or
blow up label cardinality with arbitrary strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from gateway.work.records import SafeStr, bounded_json

Platform = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
WorkerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")]
TaskKey = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f]+$")
]
OpaqueId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Command = Literal["run", "quiet", "terminate"]


def parse_command(value: str) -> Command:
    """A stored command, defaulting to `run` for anything unexpected."""
    if value == "quiet":
        return "quiet"
    if value == "terminate":
        return "terminate"
    return "run"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskIn(_Strict):
    """One task to enqueue."""

    platform: Platform
    key: TaskKey
    payload: Annotated[dict[str, Any], bounded_json(65_536)] = Field(default_factory=dict)
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    not_before: AwareDatetime | None = None


class EnqueueRequest(_Strict):
    """`POST /internal/tasks` body."""

    tasks: list[TaskIn] = Field(min_length=1)


class EnqueueResponse(BaseModel):
    """How many tasks were new and how many were already queued or leased."""

    enqueued: int
    duplicates: int
    task_ids: list[str] = Field(description="Per input task; the live task's id for a duplicate")


class LeasedTask(BaseModel):
    """A task leased to a worker until `lease_expires_at` (gateway/Redis clock)."""

    task_id: str
    lease_id: str
    platform: str
    key: str
    payload: dict[str, Any]
    attempt: int
    lease_expires_at: datetime


class WorkResponse(BaseModel):
    """`GET /internal/work` answer; empty when nothing became ready within `wait`."""

    tasks: list[LeasedTask]


class ErrorInfo(_Strict):
    """Why a task failed; `retryable` failures are retried with backoff."""

    message: Annotated[SafeStr, StringConstraints(max_length=4000)]
    retryable: bool = True


class ResultItem(_Strict):
    """One result of a batch, validated item by item."""

    task_id: OpaqueId
    lease_id: OpaqueId
    status: Literal["succeeded", "failed"]
    data: Any = None
    error: ErrorInfo | None = None


class ResultsRequest(BaseModel):
    """`POST /internal/results` body; items are validated one by one."""

    worker_id: WorkerId
    results: list[Any] = Field(min_length=1)


Outcome = Literal["accepted", "duplicate", "rejected"]


class ResultOutcome(BaseModel):
    """What became of one submitted result."""

    # Absent from the answer (which omits nulls) for an item that named none, such as
    # one that is not an object at all.
    task_id: str | None = None
    lease_id: str | None = None
    outcome: Outcome
    reason: Literal["stale_lease", "not_lease_holder", "invalid"] | None = None
    errors: list[dict[str, Any]] | None = None


class ResultsResponse(BaseModel):
    """Per-item outcomes, in request order, and their counts."""

    accepted: int
    duplicate: int
    rejected: int
    results: list[ResultOutcome]


class HeartbeatRequest(_Strict):
    """`POST /internal/heartbeat` body."""

    worker_id: WorkerId
    platforms: list[Platform] = Field(default_factory=list, max_length=100)
    lease_ids: list[OpaqueId] = Field(default_factory=list, max_length=10_000)
    version: Annotated[SafeStr, StringConstraints(max_length=64)] | None = None
    stats: Annotated[dict[str, Any], bounded_json(4096)] | None = None


class HeartbeatResponse(BaseModel):
    """Which leases were extended, which are lost, and what the worker should do."""

    extended: list[str]
    lost: list[str]
    not_holder: list[str] = Field(
        description="Those of `lost` that are current but held by another token or worker id"
    )
    cancelled: list[str] = Field(
        default_factory=list,
        description="Those of `lost` whose task was cancelled: stop working on them",
    )
    command: Command
    heartbeat_interval_s: float
