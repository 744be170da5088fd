"""The jobs plane of the public port: job service, budget, downloads, upkeep loop.

The worker ports do not run this plane; they get a `JobTracker` (`tracker_for`) as the
results path's hook, so a committed result moves its jobs in the same transaction. The
queues the service attaches to are the worker plane's own (same Redis keys, same
scripts): the public port only ever attaches and releases waiters, it never leases.
"""

from __future__ import annotations

from typing import ClassVar, Self

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.jobs.budget import JobBudget
from gateway.jobs.downloads import DownloadService
from gateway.jobs.events import EventKeys, EventPublisher
from gateway.jobs.metrics import JobMetrics, job_metrics
from gateway.jobs.service import JobService
from gateway.jobs.tracker import JobTracker
from gateway.jobs.upkeep import JobUpkeep
from gateway.kit.periodic import PeriodicLoop
from gateway.work.plane import celery_revoker, work_queue


def event_publisher(resources: Resources, metrics: JobMetrics) -> EventPublisher:
    """The deployment's job event publisher (failures counted in `metrics`)."""
    settings = resources.settings
    return EventPublisher(
        resources.redis,
        EventKeys(resources.settings.redis_key_prefix),
        stream_max=settings.job_events_max,
        feed_max=settings.job_feed_max,
        failures=metrics.publish_failures,
    )


def tracker_for(resources: Resources, audience: Audience) -> JobTracker:
    """The results hook of a worker port (`audience`): moves jobs on commit."""
    metrics = job_metrics(resources.metrics.registry(audience))
    return JobTracker(resources.sessionmaker, event_publisher(resources, metrics), metrics)


class JobsPlane:
    """Everything the job routes need."""

    name: ClassVar[str] = "jobs"

    @classmethod
    def build(cls, resources: Resources, audience: Audience = Audience.PUBLIC) -> Self:
        """The plane of the public port (not yet started)."""
        return cls(resources, audience)

    def __init__(self, resources: Resources, audience: Audience = Audience.PUBLIC) -> None:
        settings = resources.settings
        self.resources = resources
        self.metrics: JobMetrics = job_metrics(resources.metrics.registry(audience))
        queues = {a: work_queue(resources, a) for a in ("parcel", "party")}
        self.publisher = event_publisher(resources, self.metrics)
        self.budget = JobBudget(resources)
        self.downloads = DownloadService(resources, self.metrics)
        self.revoker = celery_revoker(resources)
        self.service = JobService(
            resources, queues, self.budget, self.publisher, self.metrics, self.revoker
        )
        self.tracker = JobTracker(resources.sessionmaker, self.publisher, self.metrics)
        self.upkeep = JobUpkeep(self.service, self.tracker, self.publisher, self.metrics)
        self._loop = PeriodicLoop(
            "jobs-upkeep",
            self.upkeep.step,
            settings.job_upkeep_interval_s,
            stopping=resources.stopping,
        )

    async def start(self) -> None:
        """Start the upkeep loop."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the upkeep loop; close the Celery revoker's connections."""
        await self._loop.stop()
        if self.revoker is not None:
            await self.revoker.close()
