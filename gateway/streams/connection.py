"""One client connection (an SSE stream or a WebSocket): its follows, outbox and leases.

The HTTP and WebSocket routes only frame what this hands them; everything they have in
common lives here: taking places under the caps, following jobs through the hub, the
snapshot/replay/resync start of each follow, and turning outbox entries into frames in
order. A connection may also follow its owner's parcel changes (`follow_watches`): the
hub delivers them under the owner's watch key (`gateway/watches/publish.py`), and they
are handed over as they come (`Wakeup.changes`), no replay. A connection is used by
one task (the route's), besides the hub's `offer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from gateway.jobs.events import EventKeys
from gateway.jobs.owner import Owner
from gateway.streams.caps import Lease, Place, StreamCaps
from gateway.streams.follow import Frame, JobFollower, Snapshots
from gateway.streams.hub import EventHub
from gateway.streams.metrics import StreamMetrics
from gateway.streams.outbox import CloseReason, FeedEntry, Outbox
from gateway.watches.publish import watch_key

log = structlog.get_logger("gateway.streams")


@dataclass
class Wakeup:
    """What a connection has to do now: frames to send, a keep-alive, or stop."""

    frames: list[Frame] = field(default_factory=list)
    heartbeat: bool = False
    closed: CloseReason | None = None
    finished: list[str] = field(default_factory=list)  # jobs whose terminal frame is here
    changes: list[FeedEntry] = field(default_factory=list)  # parcel.changed of the watches


class StreamConnection:
    """The follows of one connection."""

    def __init__(
        self,
        *,
        kind: str,
        owner: Owner,
        hub: EventHub,
        caps: StreamCaps,
        reads: Snapshots,
        keys: EventKeys,
        metrics: StreamMetrics,
        buffer: int,
    ) -> None:
        self.kind = kind
        self.owner = owner
        self.hub = hub
        self.caps = caps
        self.reads = reads
        self.keys = keys
        self.metrics = metrics
        self.outbox = Outbox(buffer)
        self.followers: dict[str, JobFollower] = {}
        self._leases: dict[str | None, Lease] = {}
        self._attached = False
        # The hub address of the owner's parcel changes, while the connection wants them.
        self._watches = watch_key(owner.id)
        self.watching = False

    async def open(self, *, job_id: str | None = None) -> None:
        """Take the caller's open-stream place (and `job_id`'s, for an SSE stream)."""
        places: list[Place] = [self.caps.principal_place(self.owner.id)]
        if job_id is not None:
            places.append(self.caps.job_place(job_id))
        try:
            self._leases[None] = await self.caps.take(places)
        except Exception as exc:
            self._refused(exc)
            raise
        self.hub.attach(self.outbox)
        self._attached = True
        self.metrics.open.labels(self.kind).inc()

    async def follow(
        self, job_id: str, last_event_id: int | None, *, own_place: bool = False
    ) -> list[Frame]:
        """Start following `job_id`: its first frames (404 unless it is the owner's).

        `own_place`: take a follower place of the job for this follow (a WebSocket
        subscription); an SSE stream took it with the connection.
        """
        if own_place:
            try:
                self._leases[job_id] = await self.caps.take([self.caps.job_place(job_id)])
            except Exception as exc:
                self._refused(exc)
                raise
        follower = JobFollower(
            job_id, self.owner, reads=self.reads, redis=self.hub.redis, keys=self.keys
        )
        self.followers[job_id] = follower
        self.metrics.subscriptions.inc()
        try:
            await self.hub.follow(job_id, self.outbox)
            frames = await follower.open(last_event_id)
        except BaseException:
            await self.unfollow(job_id)
            raise
        if follower.outcome != "fresh":
            self.metrics.resumes.labels(self.kind).inc()
        if follower.outcome == "resynced":
            self.metrics.resyncs.labels(self.kind).inc()
        return frames

    async def follow_watches(self) -> None:
        """Receive the owner's `parcel.changed` events from now on (live only: a client
        that was away lists what it missed from the watch's changes log)."""
        if not self.watching:
            await self.hub.follow(self._watches, self.outbox)
            self.watching = True

    def unfollow_watches(self) -> None:
        """Stop receiving `parcel.changed`."""
        if self.watching:
            self.hub.unfollow(self._watches, self.outbox)
            self.watching = False

    def finished(self, job_id: str) -> bool:
        """Whether `job_id`'s follow has sent its last frame (or is not followed)."""
        follower = self.followers.get(job_id)
        return follower is None or follower.finished

    async def unfollow(self, job_id: str) -> None:
        """Stop following `job_id` (and free its place, if it had its own)."""
        if self.followers.pop(job_id, None) is not None:
            self.metrics.subscriptions.dec()
        self.hub.unfollow(job_id, self.outbox)
        lease = self._leases.pop(job_id, None)
        if lease is not None:
            await self.caps.give_back(lease)

    async def wait(self) -> Wakeup:
        """Wait until there is something to send or a reason to stop."""
        outbox = self.outbox
        await outbox.wait()
        if outbox.closed is not None:
            return Wakeup(closed=outbox.closed)
        wakeup = Wakeup(heartbeat=outbox.heartbeat)
        outbox.heartbeat = False
        by_job: dict[str, list[FeedEntry]] = {}
        for entry in outbox.drain():
            if entry.job_id == self._watches:
                wakeup.changes.append(entry)
            else:
                by_job.setdefault(entry.job_id, []).append(entry)
        if outbox.catch_up:
            outbox.catch_up = False
            # Entries drained above are still offered below: the follower skips what
            # the catch-up already sent.
            for follower in list(self.followers.values()):
                wakeup.frames += await follower.catch_up()
        for job_id, entries in by_job.items():
            live = self.followers.get(job_id)
            if live is not None:
                wakeup.frames += await live.accept(entries)
        wakeup.finished = [f.job_id for f in wakeup.frames if f.terminal]
        return wakeup

    def sent(self, frames: Sequence[Frame | FeedEntry], now: float) -> None:
        """Count frames (and parcel changes) handed to the client, and their lag."""
        if not frames:
            return
        self.metrics.events.labels(self.kind).inc(len(frames))
        lag = self.metrics.lag.labels(self.kind)
        for frame in frames:
            if frame.at is not None:
                lag.observe(max(0.0, now - frame.at))

    async def close(self, reason: str) -> None:
        """End the connection: free every place, leave the hub, count why."""
        jobs = sorted(self.followers)
        for job_id in jobs:
            await self.unfollow(job_id)
        self.unfollow_watches()
        for lease in list(self._leases.values()):
            await self.caps.give_back(lease)
        self._leases.clear()
        if self._attached:
            self._attached = False
            self.hub.detach(self.outbox, jobs)
            self.metrics.open.labels(self.kind).dec()
            self.metrics.ended.labels(self.kind, reason).inc()
            if reason == CloseReason.SLOW.value:
                self.metrics.slow_drops.labels(self.kind).inc()
                # Once per connection: the client can resume, the operator should know.
                log.info(
                    "stream_client_too_slow",
                    kind=self.kind,
                    owner=self.owner.id,
                    jobs=jobs[:10],
                )

    def _refused(self, exc: Exception) -> None:
        slug = getattr(exc, "slug", "")
        if slug in ("too-many-followers", "too-many-streams"):
            self.metrics.refused.labels(self.kind, slug.replace("-", "_")).inc()
