"""The live-streams plane of the public port: the process's event hub, caps, tickets.

It reads job snapshots from PostgreSQL (`JobSnapshots`) and events from Redis. The hub
is per process: the public port is the one port that serves streams, so one plane per
process means one feed reader per process.
"""

from __future__ import annotations

from typing import ClassVar, Self

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.core.settings.tiers import load_tiers
from gateway.jobs.events import EventKeys
from gateway.jobs.owner import Owner
from gateway.jobs.reading import JobSnapshots
from gateway.kit.periodic import PeriodicLoop
from gateway.streams.caps import REFRESH_S, StreamCaps
from gateway.streams.connection import StreamConnection
from gateway.streams.follow import Snapshots
from gateway.streams.hub import EventHub
from gateway.streams.metrics import StreamMetrics, stream_metrics
from gateway.streams.tickets import StreamTickets, ticket_signer


class StreamsPlane:
    """Everything the stream routes need."""

    name: ClassVar[str] = "streams"

    @classmethod
    def build(cls, resources: Resources, audience: Audience = Audience.PUBLIC) -> Self:
        """The plane of the public port (not yet started)."""
        return cls(resources, audience)

    def __init__(self, resources: Resources, audience: Audience = Audience.PUBLIC) -> None:
        settings = resources.settings
        self.resources = resources
        snapshots = JobSnapshots(resources.sessionmaker)
        self.reads: Snapshots = snapshots
        self.keys = EventKeys(settings.redis_key_prefix)
        self.metrics: StreamMetrics = stream_metrics(resources.metrics.registry(audience))
        self.hub = EventHub(
            resources.redis,
            self.keys,
            heartbeat_s=settings.sse_heartbeat_s,
            stopping=resources.stopping,
            on_read_failure=self.metrics.feed_failures.inc,
        )
        self.caps = StreamCaps(
            resources.redis,
            settings.redis_key_prefix,
            per_job=settings.sse_max_per_job,
            per_principal=settings.sse_max_per_principal,
        )
        self.tickets = StreamTickets(
            resources.redis,
            settings.redis_key_prefix,
            signer=ticket_signer(settings),
            tiers=load_tiers(settings.tiers_file, settings.default_tier),
            jobs=snapshots,
            ttl_s=settings.stream_ticket_ttl_s,
        )
        self._refresh = PeriodicLoop(
            "stream-leases", self.caps.refresh, REFRESH_S, stopping=resources.stopping
        )

    def connection(self, kind: str, owner: Owner) -> StreamConnection:
        """A new connection of `owner` (not opened yet)."""
        return StreamConnection(
            kind=kind,
            owner=owner,
            hub=self.hub,
            caps=self.caps,
            reads=self.reads,
            keys=self.keys,
            metrics=self.metrics,
            buffer=self.resources.settings.stream_buffer_events,
        )

    async def start(self) -> None:
        """Start the heartbeat and the lease refresh."""
        self.hub.start()
        self._refresh.start()

    async def stop(self) -> None:
        """Close every stream (they say goodbye) and stop the loops."""
        await self.hub.stop()
        await self._refresh.stop()
        await self.caps.drain()
