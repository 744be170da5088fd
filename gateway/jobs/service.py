"""Client jobs: submit, read, list, cancel (the logic behind `/v1/jobs` and the CLI).

Skeleton: the implementation lands with the core of issue 12; signatures are final.
"""

from __future__ import annotations

from datetime import datetime

from gateway.jobs.models import ItemList, ItemState, JobCreated, JobKind, JobList, JobOut, JobState
from gateway.jobs.owner import Owner
from gateway.jobs.spec import JobSpec


class JobService:
    """Jobs of every owner; each call is checked against its owner (another's is a 404)."""

    async def known_platforms(self, kind: JobKind) -> set[str]:
        """Platforms items of `kind` may name (configured, or seen by the queue)."""
        raise NotImplementedError

    async def submit(self, owner: Owner, spec: JobSpec) -> JobCreated:
        """Record the job and queue or attach its tasks, all or nothing (201)."""
        raise NotImplementedError

    async def find_open_upload(self, owner: Owner, sha256: str) -> JobOut | None:
        """The owner's unfinished job created from an upload with this content hash."""
        raise NotImplementedError

    async def get(self, owner: Owner, job_id: str) -> JobOut:
        """One of the owner's jobs (404 for anyone else's)."""
        raise NotImplementedError

    async def list(
        self,
        owner: Owner | None,
        *,
        states: list[JobState] | None,
        kind: JobKind | None,
        created_after: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> JobList:
        """The owner's jobs (every job when `owner` is None: admins), newest first."""
        raise NotImplementedError

    async def items(
        self,
        owner: Owner,
        job_id: str,
        *,
        state: ItemState | None,
        limit: int,
        cursor: str | None,
    ) -> ItemList:
        """A page of a job's items, by index."""
        raise NotImplementedError

    async def cancel(self, owner: Owner | None, job_id: str) -> JobOut:
        """Cancel an open job (409 when finished); None owner: an admin's cancel."""
        raise NotImplementedError
