"""A connection's bounded queue of events to send, and its reason to stop.

The hub puts feed entries in (`offer`, never waits); the connection's one task takes
them out (`take`) and writes them. When the connection falls `limit` entries behind,
because its client stopped reading and the transport's flow control holds the writer,
the outbox closes itself with `SLOW` instead of growing: the client is disconnected and
resumes from its last event id when it reconnects. Heartbeats and catch-up requests are
flags, not entries, so they cost nothing however many pile up.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class CloseReason(StrEnum):
    """Why a connection's outbox stopped."""

    SLOW = "slow"  # it fell `limit` entries behind
    SHUTDOWN = "shutdown"  # the process is stopping
    DISCONNECTED = "disconnected"  # the client went away
    DONE = "done"  # the connection ended on its own (terminal event, client closed)


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One published job event, as the feed carries it (`gateway/jobs/events.py`)."""

    job_id: str
    seq: int
    type: str
    body: bytes  # the event's JSON, sent as is
    at: float  # the event's time (Unix seconds): the lag metric's start


class Outbox:
    """What one connection still has to send (bounded), and whether it must stop."""

    # Slots, a list and a future made only while someone waits: one of these per open
    # connection, so every few hundred bytes count (an `asyncio.Event` holds a deque).
    __slots__ = ("_entries", "_limit", "_waiter", "catch_up", "closed", "heartbeat")

    def __init__(self, limit: int) -> None:
        self._entries: list[FeedEntry] = []
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self.closed: CloseReason | None = None
        self.heartbeat = False
        self.catch_up = False

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def offer(self, entry: FeedEntry) -> None:
        """Queue `entry`; past the limit the outbox closes as `SLOW` instead."""
        if self.closed is not None:
            return
        if len(self._entries) >= self._limit:
            self._entries.clear()
            self.close(CloseReason.SLOW)
            return
        self._entries.append(entry)
        self._wake()

    def tick(self) -> None:
        """Ask for a keep-alive (the hub's heartbeat)."""
        self.heartbeat = True
        self._wake()

    def ask_catch_up(self) -> None:
        """Ask the connection to re-read its jobs' streams (the feed may have gaps)."""
        self.catch_up = True
        self._wake()

    def close(self, reason: CloseReason) -> None:
        """Stop the connection (the first reason wins)."""
        if self.closed is None:
            self.closed = reason
        self._wake()

    async def wait(self) -> None:
        """Return once there is something to do: entries, a flag, or a close."""
        while not (self._entries or self.heartbeat or self.catch_up or self.closed):
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def drain(self) -> list[FeedEntry]:
        """Every queued entry, oldest first (the outbox is empty after)."""
        entries, self._entries = self._entries, []
        return entries


def feed_entry(job_id: str, fields: dict[bytes, bytes]) -> FeedEntry:
    """A feed or job-stream entry's fields as a `FeedEntry` (parsed once per process)."""
    body = fields[b"event"]
    at = datetime.fromisoformat(json.loads(body)["at"]).timestamp()
    return FeedEntry(
        job_id=job_id,
        seq=int(fields[b"seq"]) if b"seq" in fields else 0,
        type=fields[b"type"].decode(),
        body=body,
        at=at,
    )
