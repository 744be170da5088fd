"""Wiring of parcel watches: the service of the public port's routes, and the results
hook of the parcel port (`watcher_for`, handed to its worker plane by the app factory)."""

from __future__ import annotations

from typing import ClassVar, Self

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.jobs.events import EventKeys
from gateway.jobs.platforms import known_platforms
from gateway.watches.metrics import watch_metrics
from gateway.watches.observer import ParcelWatcher
from gateway.watches.publish import ChangePublisher
from gateway.watches.service import WatchService
from gateway.work.plane import work_queue


def watcher_for(resources: Resources, audience: Audience) -> ParcelWatcher:
    """The parcel port's watch hook (metrics in `audience`'s registry)."""
    metrics = watch_metrics(resources.metrics.registry(audience))
    publisher = ChangePublisher(
        resources.redis,
        EventKeys(resources.settings.redis_key_prefix),
        feed_max=resources.settings.job_feed_max,
        metrics=metrics,
    )
    return ParcelWatcher(publisher, metrics)


class WatchesPlane:
    """Everything the watch routes need (no background work: the parcel port records
    changes, the webhooks plane delivers them)."""

    name: ClassVar[str] = "watches"

    @classmethod
    def build(cls, resources: Resources, audience: Audience = Audience.PUBLIC) -> Self:
        """The plane of the public port."""
        return cls(resources, audience)

    def __init__(self, resources: Resources, audience: Audience = Audience.PUBLIC) -> None:
        self.resources = resources
        self.audience = audience
        queue = work_queue(resources, Audience.PARCEL)
        configured = resources.settings.job_platforms.get(Audience.PARCEL, [])

        async def platforms() -> set[str]:
            return await known_platforms(configured, queue)

        self.service = WatchService(resources.sessionmaker, platforms)

    async def start(self) -> None:
        """Nothing to start."""

    async def stop(self) -> None:
        """Nothing to stop."""
