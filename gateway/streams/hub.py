"""One reader of the job feed per process, multiplexed to every local follower.

Ten thousand clients must not mean ten thousand Redis connections: the hub holds one
blocking `XREAD` on the cross-job feed (`<prefix>jobs:feed`, written by the publish
script with every job event) and hands each entry to the outboxes that follow its job.
It runs only while someone follows a job (a process without stream clients holds no
Redis connection for it), and starts from the feed's tail.

No event is lost between "follow" and "first read": `follow()` registers the outbox
first and returns once the reader's start position is fixed; the follower then replays
its job's own stream, which holds everything published up to now, and from then on the
feed delivers everything after the reader's position. Overlap is removed by sequence
(`follow.py`). If the reader loses Redis, it reconnects where it stopped and asks every
outbox to catch up from its job streams, since the feed may have been trimmed meanwhile.

The hub also beats the process's one heartbeat (`tick` on every outbox each
`SSE_HEARTBEAT_S`, no timer per connection) and, when the process stops, closes every
outbox with `SHUTDOWN` so each connection says goodbye and ends within the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from redis.asyncio import Redis

from gateway.core.errors import DependencyUnavailable
from gateway.jobs.events import EventKeys
from gateway.kit.outage import REDIS_FAILURE
from gateway.streams.outbox import CloseReason, Outbox, feed_entry

log = structlog.get_logger("gateway.streams.hub")

# How long one XREAD blocks: bounds how long an idle reader takes to notice it may stop.
BLOCK_MS = 2000
# Entries per read: a burst is dispatched in slices, Redis is never asked for more.
READ_COUNT = 500
_RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# How long a new follower waits for the reader to find its start (Redis down: a 503).
POSITION_S = 5.0


class EventHub:
    """The process's feed reader, heartbeat and shutdown signal for live streams."""

    def __init__(
        self,
        redis: Redis,
        keys: EventKeys,
        *,
        heartbeat_s: float,
        stopping: asyncio.Event,
        on_read_failure: Callable[[], None] | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.heartbeat_s = heartbeat_s
        self.stopping = stopping
        self._on_read_failure = on_read_failure
        self._followers: dict[str, set[Outbox]] = {}
        self._outboxes: set[Outbox] = set()
        self._reader: asyncio.Task[None] | None = None
        self._positioned: asyncio.Future[None] | None = None
        self._beat: asyncio.Task[None] | None = None
        self._closed = False

    # -- connections ---------------------------------------------------------------

    def attach(self, outbox: Outbox) -> None:
        """A connection opened: it gets heartbeats and the shutdown signal."""
        if self._closed or self.stopping.is_set():
            outbox.close(CloseReason.SHUTDOWN)
        self._outboxes.add(outbox)

    def detach(self, outbox: Outbox, job_ids: Iterable[str] = ()) -> None:
        """A connection ended: forget it and the jobs it followed (`job_ids`: the hub
        keeps no index from connection to jobs, the connection knows its own)."""
        self._outboxes.discard(outbox)
        for job_id in job_ids:
            self.unfollow(job_id, outbox)

    async def follow(self, job_id: str, outbox: Outbox) -> None:
        """Deliver `job_id`'s feed entries to `outbox` from now on.

        Returns once the reader's position is fixed: every event published after this
        call returns reaches the outbox (the caller replays what came before).
        """
        self._followers.setdefault(job_id, set()).add(outbox)
        if self._reader is None or self._reader.done():
            self._positioned = asyncio.get_running_loop().create_future()
            self._reader = asyncio.create_task(self._read(self._positioned), name="stream-hub")
        assert self._positioned is not None
        # Shielded: a follower that gives up waiting must not cancel the shared reader.
        done, _ = await asyncio.wait({asyncio.shield(self._positioned)}, timeout=POSITION_S)
        if not done:
            self.unfollow(job_id, outbox)
            raise DependencyUnavailable("redis", "The live event feed is unavailable")

    def unfollow(self, job_id: str, outbox: Outbox) -> None:
        """Stop delivering `job_id` to `outbox`."""
        boxes = self._followers.get(job_id)
        if boxes is not None:
            boxes.discard(outbox)
            if not boxes:
                del self._followers[job_id]

    @property
    def connections(self) -> int:
        """Connections attached in this process."""
        return len(self._outboxes)

    @property
    def following(self) -> int:
        """(job, connection) pairs this process delivers."""
        return sum(len(boxes) for boxes in self._followers.values())

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start the heartbeat and the shutdown watch."""
        self._beat = asyncio.create_task(self._heartbeat(), name="stream-heartbeat")

    async def stop(self) -> None:
        """Close every outbox (SHUTDOWN) and stop the reader and the heartbeat."""
        self._closed = True
        self._shutdown()
        for task in (self._beat, self._reader):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._beat = self._reader = None

    def _shutdown(self) -> None:
        for outbox in list(self._outboxes):
            outbox.close(CloseReason.SHUTDOWN)

    async def _heartbeat(self) -> None:
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            while True:
                done, _ = await asyncio.wait({stop}, timeout=self.heartbeat_s)
                if done:
                    # The process is stopping: every stream says goodbye now, so none
                    # holds the server's graceful drain.
                    self._shutdown()
                    return
                for outbox in list(self._outboxes):
                    outbox.tick()
        finally:
            stop.cancel()

    # -- the reader ----------------------------------------------------------------

    async def _read(self, positioned: asyncio.Future[None]) -> None:
        last_id: str | None = None
        failures = 0
        while self._followers and not self._closed:
            try:
                if last_id is None:
                    last_id = await self._tail()
                    if not positioned.done():
                        positioned.set_result(None)
                reply: Any = await self.redis.xread(
                    {self.keys.feed: last_id}, count=READ_COUNT, block=BLOCK_MS
                )
            except Exception as exc:
                if self._on_read_failure is not None:
                    self._on_read_failure()
                if failures == 0:
                    log.warning(
                        "stream_feed_read_failed",
                        error=type(exc).__name__,
                        redis=isinstance(exc, REDIS_FAILURE),
                    )
                await asyncio.sleep(_RETRY_S[min(failures, len(_RETRY_S) - 1)])
                failures += 1
                continue
            if failures:
                # Back after an outage: the feed may have been trimmed past our position,
                # so every follower re-reads its own job's stream.
                log.info("stream_feed_read_recovered", failures=failures)
                failures = 0
                for outbox in list(self._outboxes):
                    outbox.ask_catch_up()
            for _stream, entries in reply or ():
                for entry_id, fields in entries:
                    last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    self._dispatch(fields)
        if not positioned.done():
            positioned.set_result(None)

    async def _tail(self) -> str:
        """The feed's last entry id ("0-0" when it is empty): where reading starts."""
        tail: Any = await self.redis.xrevrange(self.keys.feed, count=1)
        if not tail:
            return "0-0"
        entry_id = tail[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def _dispatch(self, fields: dict[bytes, bytes]) -> None:
        job_id = fields.get(b"job", b"").decode()
        boxes = self._followers.get(job_id)
        if not boxes:
            return
        try:
            entry = feed_entry(job_id, fields)
        except (KeyError, ValueError, TypeError):
            # Not written by the publish script; the job's stream is the record anyway.
            log.warning("stream_feed_entry_malformed", fields=sorted(k.decode() for k in fields))
            return
        for outbox in list(boxes):
            outbox.offer(entry)
