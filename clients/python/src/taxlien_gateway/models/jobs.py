"""Client jobs (`/v1/jobs`): a job, its items, and the events of its life.

A job event is the one document the gateway produces per change: the SSE stream, the
WebSocket and webhooks all carry it (`gateway/jobs/schemas/job-event.schema.json`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from taxlien_gateway.models._base import Model, Page

JobKind = Literal["parcel_refresh", "party_refresh"]
JobState = Literal[
    "queued", "running", "completed", "partially_failed", "failed", "cancelled", "expired"
]
ItemState = Literal["pending", "succeeded", "failed", "cancelled", "expired"]
JobEventType = Literal[
    "job.queued",
    "job.progress",
    "job.completed",
    "job.partially_failed",
    "job.failed",
    "job.cancelled",
    "job.expired",
]
TERMINAL_STATES: frozenset[str] = frozenset(
    {"completed", "partially_failed", "failed", "cancelled", "expired"}
)
TERMINAL_EVENTS: frozenset[str] = frozenset(f"job.{state}" for state in TERMINAL_STATES)


class Progress(Model):
    """Item counts (`pending`: neither succeeded, failed, cancelled nor expired)."""

    total: int
    succeeded: int
    failed: int
    cancelled: int
    expired: int
    pending: int


class JobCredits(Model):
    """Credits of one job: estimated at submission, charged, still reserved."""

    estimated: int
    charged: int
    reserved: int


class Estimate(Model):
    """What a submission costs: items (duplicates merged) and credits."""

    items: int
    duplicate_items: int = 0
    credits: int
    cost_per_item: int


class Job(Model):
    """A job as its owner sees it."""

    id: str
    kind: JobKind
    state: JobState
    label: str | None = None
    priority: int = 0
    deadline: datetime | None = None
    progress: Progress
    credits: JobCredits
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    state_reason: str | None = None
    owner: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the job reached a terminal state (nothing moves it any more)."""
        return self.state in TERMINAL_STATES


class CreatedJob(Job):
    """The answer to a submission: the job and its estimate."""

    estimate: Estimate


class JobItem(Model):
    """One item of a job (`property_url`: where a parcel's data is read)."""

    index: int
    platform: str
    id: str
    state: ItemState
    attempts: int | None = None
    last_error: str | None = None
    finished_at: datetime | None = None
    property_url: str | None = None


class JobPage(Page[Job]):
    """A page of the caller's jobs, newest first."""


class JobItemPage(Page[JobItem]):
    """A page of a job's items, by index."""


class JobEventData(Model):
    """The state and counts an event reports (`reason` for cancelled, expired, forced)."""

    state: JobState
    progress: Progress
    reason: str | None = None


class JobEvent(Model):
    """One event of a job; `id` (`<job id>:<seq>`) is stable: deduplicate on it."""

    id: str
    type: JobEventType
    job_id: str
    seq: int
    at: datetime
    owner: str
    data: JobEventData

    @property
    def terminal(self) -> bool:
        """Whether this is the job's last event."""
        return self.type in TERMINAL_EVENTS


class JobSnapshot(Model):
    """The job in full, as a stream sends it first (`snapshot`) or after a resume whose
    missed events are gone (`resync`): replace your copy of the job with it."""

    kind: Literal["snapshot", "resync"]
    seq: int
    job: Job


FollowEvent = JobSnapshot | JobEvent
"""What `jobs.follow()` yields: snapshots (and resyncs) and the job's events."""
