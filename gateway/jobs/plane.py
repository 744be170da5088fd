"""The jobs plane of the public port: job service, budget, downloads, upkeep loop.

The worker ports do not run this plane; they get a `JobTracker` (`tracker.py`) as the
results path's hook, so a committed result moves its jobs in the same transaction.
"""

from __future__ import annotations

from typing import ClassVar, Self

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.jobs.budget import JobBudget
from gateway.jobs.downloads import DownloadService
from gateway.jobs.service import JobService


class JobsPlane:
    """Everything the job routes need."""

    name: ClassVar[str] = "jobs"

    @classmethod
    def build(cls, resources: Resources, audience: Audience = Audience.PUBLIC) -> Self:
        """The plane of the public port (not yet started)."""
        return cls(resources)

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self.budget = JobBudget(resources)
        self.downloads = DownloadService(resources)
        self.service = JobService()

    async def start(self) -> None:
        """Start the upkeep loop."""

    async def stop(self) -> None:
        """Stop the upkeep loop."""
