"""Shapes of client jobs: what a caller submits, what it reads back, and the events.

A job names items of one audience: `parcel_refresh` items are parcels
(`{"platform", "parcel_id"}`, parcel queue), `party_refresh` items are parties
(`{"platform", "party_id"}`, party queue). Each item is one queue task whose key is the
parcel or party id, so two jobs (or a job and a producer) naming the same item share
one task. Item ids follow the worker plane's task-key rules; platforms its platform
rules and must be known (see `JobSettings.job_platforms`).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from gateway.work.models import Platform, TaskKey

Label = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
JobId = Annotated[str, StringConstraints(pattern=r"^job_[0-9a-f]{24}$")]


class JobKind(enum.StrEnum):
    """What a job refreshes; decides the audience (queue) and the item shape."""

    PARCEL_REFRESH = "parcel_refresh"
    PARTY_REFRESH = "party_refresh"

    @property
    def audience(self) -> str:
        """The worker audience whose queue carries this kind's tasks."""
        return "parcel" if self is JobKind.PARCEL_REFRESH else "party"

    @property
    def id_field(self) -> str:
        """The item field that names the entity (and is the task key)."""
        return "parcel_id" if self is JobKind.PARCEL_REFRESH else "party_id"


class JobState(enum.StrEnum):
    """A job's lifecycle; `submitting` is internal (never shown to its owner)."""

    SUBMITTING = "submitting"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        """Whether nothing moves this job any more."""
        return self in TERMINAL


TERMINAL = frozenset(
    {
        JobState.COMPLETED,
        JobState.PARTIALLY_FAILED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.EXPIRED,
    }
)
OPEN = frozenset({JobState.SUBMITTING, JobState.QUEUED, JobState.RUNNING})


class ItemState(enum.StrEnum):
    """One item's outcome; every item leaves `pending` exactly once."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParcelItem(_Strict):
    """One parcel to refresh."""

    platform: Platform
    parcel_id: TaskKey


class PartyItem(_Strict):
    """One party (owner, lienholder) to refresh, with its documents."""

    platform: Platform
    party_id: TaskKey


class JobIn(_Strict):
    """`POST /v1/jobs` body. Items are validated one by one (errors carry the index)."""

    kind: JobKind
    items: list[Any] = Field(description="ParcelItem or PartyItem objects, by `kind`")
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    deadline: AwareDatetime | None = None
    label: Label | None = None
    webhook: Any = Field(default=None, description="Reserved for the webhooks feature")


class Item(BaseModel):
    """A validated item: the platform and the task key (parcel or party id)."""

    model_config = ConfigDict(frozen=True)

    platform: str
    key: str


class Progress(BaseModel):
    """Item counts; `pending` is what is neither succeeded, failed, cancelled nor expired."""

    total: int
    succeeded: int
    failed: int
    cancelled: int
    expired: int
    pending: int


class Estimate(BaseModel):
    """What a job costs: items (after merging duplicates) and credits."""

    items: int
    duplicate_items: int = 0
    credits: int
    cost_per_item: int


class Credits(BaseModel):
    """Credits of this job: estimated at submission, charged, still reserved."""

    estimated: int
    charged: int
    reserved: int


class JobOut(BaseModel):
    """A job as its owner sees it."""

    id: str
    kind: JobKind
    state: JobState
    label: str | None
    priority: int
    deadline: datetime | None
    progress: Progress
    credits: Credits
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    state_reason: str | None = None
    owner: str | None = Field(default=None, description="Shown to admins only")


class JobCreated(JobOut):
    """The answer to a submission: the job and its estimate."""

    estimate: Estimate


class JobList(BaseModel):
    """A page of jobs, newest first; `next_cursor` is null on the last page."""

    items: list[JobOut]
    next_cursor: str | None


class ItemOut(BaseModel):
    """One item of a job."""

    index: int
    platform: str
    id: str
    state: ItemState
    attempts: int | None
    last_error: str | None
    finished_at: datetime | None
    property_url: str | None = Field(description="Where its data is read (parcels only)")


class ItemList(BaseModel):
    """A page of a job's items, by index; `next_cursor` is null on the last page."""

    items: list[ItemOut]
    next_cursor: str | None


EventType = Literal[
    "job.queued",
    "job.progress",
    "job.completed",
    "job.partially_failed",
    "job.failed",
    "job.cancelled",
    "job.expired",
]


class JobEvent(BaseModel):
    """One event of a job (schema: `gateway/jobs/schemas/job-event.schema.json`)."""

    id: str = Field(description="`<job id>:<seq>`, stable: a consumer's dedupe key")
    type: EventType
    job_id: str
    seq: int
    at: datetime
    owner: str
    data: dict[str, Any]
