"""Job events: produced once, stored in PostgreSQL, published to Redis for every consumer.

Every job state change and progress step is one event with the job's next sequence
number (`jobs.event_seq`, incremented in the UPDATE that makes the change, so the row
lock orders them). The event row is written to `job_events` in the same transaction as
the change (the outbox); after the commit it is published (`lua/publish.lua`) to:

- the job's stream `jobs:ev:<job id>`, entry id `0-<seq>`, trimmed to about
  JOB_EVENTS_MAX entries and expiring JOB_EVENT_STREAM_TTL_S after its last event: what a
  live stream replays from after a reconnect (`XRANGE key (0-<last id> +`);
- the feed `jobs:feed` (every job, auto ids, trimmed to about JOB_FEED_MAX): what a
  process-wide consumer (live streams, webhooks) reads with one blocking XREAD.

A publish that never happened (the process died after the commit, Redis was down) is
repaired by the upkeep loop (`upkeep.py`): every change also sets
`jobs.publish_check_at`, and the loop compares the job's last sequence with its stream's
and re-publishes what is missing. Publishing is idempotent per (job, seq), so the relay
and a slow original publish may both run. The schema of an event is
`gateway/jobs/schemas/job-event.schema.json`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis

from gateway.jobs.models import JobEvent, JobState
from gateway.kit.lua import register_scripts
from gateway.kit.outage import REDIS_FAILURE

log = structlog.get_logger("gateway.jobs.events")

# Streams of jobs nobody has touched for this long expire in Redis (PostgreSQL keeps
# every event): a week covers a reconnecting client and a late webhook retry.
JOB_EVENT_STREAM_TTL_S = 7 * 86_400

TERMINAL_EVENT = {
    JobState.COMPLETED: "job.completed",
    JobState.PARTIALLY_FAILED: "job.partially_failed",
    JobState.FAILED: "job.failed",
    JobState.CANCELLED: "job.cancelled",
    JobState.EXPIRED: "job.expired",
}


def progress_of(row: Any) -> dict[str, int]:
    """The progress counts of a `jobs` row."""
    done = row.succeeded + row.failed + row.cancelled + row.expired
    return {
        "total": row.total,
        "succeeded": row.succeeded,
        "failed": row.failed,
        "cancelled": row.cancelled,
        "expired": row.expired,
        "pending": row.total - done,
    }


def event_data(row: Any, reason: str | None = None) -> dict[str, Any]:
    """What every job event carries: the job's state and progress after the change."""
    data: dict[str, Any] = {"state": row.state, "progress": progress_of(row)}
    if reason is not None:
        data["reason"] = reason
    return data


def make_event(
    job_id: str, owner: str, seq: int, type_: str, at: datetime, data: dict[str, Any]
) -> JobEvent:
    """One event of a job."""
    return JobEvent(
        id=f"{job_id}:{seq}",
        type=type_,
        job_id=job_id,
        seq=seq,
        at=at,
        owner=owner,
        data=data,
    )


@dataclass(frozen=True)
class EventKeys:
    """Where job events live in Redis."""

    prefix: str

    def stream(self, job_id: str) -> str:
        """The stream of one job's events."""
        return f"{self.prefix}jobs:ev:{job_id}"

    @property
    def feed(self) -> str:
        """The stream of every job's events."""
        return f"{self.prefix}jobs:feed"


class EventPublisher:
    """Publishes committed events to Redis (idempotent per job and sequence)."""

    def __init__(
        self,
        redis: Redis,
        keys: EventKeys,
        *,
        stream_max: int,
        feed_max: int,
        failures: Counter | None = None,
    ) -> None:
        self.redis = redis
        self.failures = failures
        self.keys = keys
        self.stream_max = stream_max
        self.feed_max = feed_max
        self._script = register_scripts(redis, "gateway.jobs", ["publish"])["publish"]

    async def publish(self, events: Sequence[JobEvent]) -> int:
        """Append `events` (any jobs, ascending seq per job); how many were new."""
        if not events:
            return 0
        keys = [self.keys.feed]
        args: list[str | int] = [JOB_EVENT_STREAM_TTL_S, self.feed_max, self.stream_max]
        for event in events:
            keys.append(self.keys.stream(event.job_id))
            args += [event.seq, event.type, event.job_id, event.model_dump_json()]
        appended: int = await self._script(keys=keys, args=args)
        return appended

    async def publish_quietly(self, events: Sequence[JobEvent]) -> None:
        """Publish after a commit: a failure is logged and left to the upkeep relay."""
        try:
            await self.publish(events)
        except REDIS_FAILURE as exc:
            if self.failures is not None:
                self.failures.inc()
            log.warning("job_events_publish_deferred", events=len(events), error=type(exc).__name__)

    async def last_seq(self, job_ids: Sequence[str]) -> dict[str, int]:
        """The last published sequence of each job (0 when its stream is empty or gone)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.xrevrange(self.keys.stream(job_id), count=1)
            tails = await pipe.execute()
        out: dict[str, int] = {}
        for job_id, tail in zip(job_ids, tails, strict=True):
            out[job_id] = _seq_of(tail[0][0]) if tail else 0
        return out

    async def read(self, job_id: str, after: int = 0) -> list[JobEvent]:
        """The job's events in its stream after sequence `after` (for tests and replays)."""
        entries: Any = await self.redis.xrange(self.keys.stream(job_id), min=f"(0-{after}", max="+")
        return [JobEvent.model_validate(json.loads(fields[b"event"])) for _, fields in entries]


def _seq_of(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[2])
