"""One job followed by one connection: one gap-free, duplicate-free sequence of frames.

A follower starts from PostgreSQL, the source of truth, and continues from Redis:

- fresh (no last event id): a `snapshot` frame with the job's full state, whose id is
  the sequence of the job's last committed event; then every event after it;
- resumed (`Last-Event-ID: L`): the events after L replayed from the job's stream; if
  the stream no longer holds them (trimmed past L, or expired), a `resync` frame with
  the full state instead, and the events after that;
- then the live entries the hub delivers, each sent only if its sequence is above the
  last one sent. An entry more than one above means the feed skipped something (it was
  trimmed while the reader was away): the gap is read from the job's stream first.
  Gaps are also legitimate (a superseded progress snapshot is never published), which
  costs one short read and sends nothing.

The follower ends after the job's terminal event (or a snapshot of a finished job).
Events committed but not yet published when the snapshot was read have sequences at or
below the snapshot's, so they are in it and are skipped when they arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from gateway.jobs.events import TERMINAL_EVENT, EventKeys
from gateway.jobs.models import JobOut
from gateway.jobs.owner import Owner
from gateway.kit.outage import redis_guard
from gateway.streams.outbox import FeedEntry, feed_entry

SNAPSHOT = "snapshot"
RESYNC = "resync"
_TERMINAL_TYPES = frozenset(TERMINAL_EVENT.values())
_TERMINAL_STATES = frozenset(TERMINAL_EVENT)


@dataclass(frozen=True, slots=True)
class Frame:
    """One thing to send a client about a job."""

    job_id: str
    seq: int  # the client's resume point once this frame is sent
    type: str  # an event type (`job.progress`, ...) or `snapshot` / `resync`
    body: bytes  # JSON
    at: float | None  # the event's time, for the lag metric (None for snapshots)
    terminal: bool  # nothing follows it


class Snapshots(Protocol):
    """Where a follower reads a job's full state (`gateway.jobs.reading.JobReads`)."""

    async def snapshot(self, owner: Owner, job_id: str) -> tuple[JobOut, int]: ...


class JobFollower:
    """Frames of one job for one connection, in order, each once."""

    __slots__ = ("finished", "job_id", "keys", "last_seq", "outcome", "owner", "reads", "redis")

    def __init__(
        self, job_id: str, owner: Owner, *, reads: Snapshots, redis: Redis, keys: EventKeys
    ) -> None:
        self.job_id = job_id
        self.owner = owner
        self.reads = reads
        self.redis = redis
        self.keys = keys
        self.last_seq = 0
        self.finished = False
        # How `open` started: "fresh", "resumed" or "resynced" (counted by the caller).
        self.outcome = "fresh"

    async def open(self, last_event_id: int | None) -> list[Frame]:
        """The first frames: a snapshot, or the replay after `last_event_id`, or a resync.

        Raises `NotFound` (404) unless the job is the owner's. Call after the hub
        delivers this job's entries to the connection, so nothing falls between.
        """
        job, seq = await self.reads.snapshot(self.owner, self.job_id)
        if last_event_id is None:
            return [self._full(SNAPSHOT, job, seq)]
        self.outcome = "resumed"
        if last_event_id > seq:
            # Not an id this job ever had (another job's, or made up): start over.
            self.outcome = "resynced"
            return [self._full(RESYNC, job, seq)]
        if last_event_id == seq:
            self.last_seq = seq
            self.finished = job.state in _TERMINAL_STATES
            return []
        with redis_guard():
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xrange(self.keys.stream(self.job_id), min="-", max="+", count=1)
                pipe.xrange(self.keys.stream(self.job_id), min=f"(0-{last_event_id}", max="+")
                first, after = await pipe.execute()
        oldest = _seq_of(first[0][0]) if first else None
        if oldest is None or oldest > last_event_id + 1:
            # The events after the client's id are gone from Redis (PostgreSQL has them,
            # but a full state is what a client needs after so long).
            self.outcome = "resynced"
            return [self._full(RESYNC, job, seq)]
        self.last_seq = last_event_id
        return self._fresh(self._stream_entries(after))

    async def accept(self, entries: Iterable[FeedEntry]) -> list[Frame]:
        """Frames for live feed entries of this job (gaps read from the job's stream)."""
        frames: list[Frame] = []
        for entry in entries:
            if self.finished or entry.seq <= self.last_seq:
                continue
            if entry.seq > self.last_seq + 1:
                frames += self._fresh(await self._read_between(self.last_seq, entry.seq))
                if self.finished:
                    break
            frames += self._fresh([entry])
        return frames

    async def catch_up(self) -> list[Frame]:
        """Frames for whatever the job's stream holds after the last one sent."""
        if self.finished:
            return []
        return self._fresh(await self._read_between(self.last_seq, None))

    def _full(self, kind: str, job: JobOut, seq: int) -> Frame:
        self.last_seq = seq
        self.finished = job.state in _TERMINAL_STATES
        body = job.model_dump_json(exclude_none=False).encode()
        return Frame(self.job_id, seq, kind, body, None, self.finished)

    def _fresh(self, entries: Iterable[FeedEntry]) -> list[Frame]:
        frames: list[Frame] = []
        for entry in entries:
            if self.finished or entry.seq <= self.last_seq:
                continue
            self.last_seq = entry.seq
            terminal = entry.type in _TERMINAL_TYPES
            self.finished = terminal
            frames.append(Frame(self.job_id, entry.seq, entry.type, entry.body, entry.at, terminal))
        return frames

    async def _read_between(self, after: int, before: int | None) -> list[FeedEntry]:
        high = "+" if before is None else f"(0-{before}"
        with redis_guard():
            raw: Any = await self.redis.xrange(
                self.keys.stream(self.job_id), min=f"(0-{after}", max=high
            )
        return self._stream_entries(raw)

    def _stream_entries(self, raw: Any) -> list[FeedEntry]:
        return [
            feed_entry(self.job_id, {**fields, b"seq": str(_seq_of(entry_id)).encode()})
            for entry_id, fields in raw
        ]


def _seq_of(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.partition("-")[2])
