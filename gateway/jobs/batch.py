"""Several job specs in one request (`POST /v1/jobs/batch`), each with its own outcome.

Like the worker plane's result batches, every spec is validated and submitted on its
own, in order, and gets its own outcome: the job (201) or a problem (4xx). One bad spec
never spoils the others; each one is a separate submission (its own budget check, its
own job-creation slot, all or nothing as `JobService.submit` promises).

A backend outage (503) is the exception, decided so a client can always retry safely:

* while no job of the batch has been created yet, the whole request answers 503 (with
  `Retry-After`): nothing happened, so repeating the whole batch is right;
* once a job was created, the spec that met the outage gets a 503 outcome and the specs
  after it get one too without being tried ("not attempted"), instead of each waiting
  out the same outage; the answer is still 200, listing what was created, so the client
  resubmits exactly the failed specs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.core.errors import (
    DependencyUnavailable,
    GatewayError,
    InvalidInput,
    ServiceUnavailable,
)
from gateway.jobs.models import JobCreated, JobIn, JobKind
from gateway.jobs.owner import Owner
from gateway.jobs.service import JobService
from gateway.jobs.spec import JobSpec, spec_from_body
from gateway.kit.field_errors import field_errors, invalid_field


class BatchIn(BaseModel):
    """`POST /v1/jobs/batch` body; each spec is validated on its own (errors carry its index)."""

    model_config = ConfigDict(extra="forbid")

    jobs: list[Any] = Field(min_length=1, description="JobIn objects (as for POST /v1/jobs)")


class BatchResult(BaseModel):
    """The outcome of one spec: its job (status 201) or its problem document."""

    index: int
    status: int
    job: JobCreated | None = None
    problem: dict[str, Any] | None = None


class BatchOut(BaseModel):
    """Outcomes in request order and their counts."""

    results: list[BatchResult]
    created: int
    failed: int


@dataclass(frozen=True)
class BatchEntry:
    """One spec's outcome before it is rendered: a job or an error."""

    index: int
    job: JobCreated | None = None
    error: GatewayError | None = None


class _Platforms:
    """Known platforms per kind, looked up once per batch."""

    def __init__(self, service: JobService) -> None:
        self.service = service
        self.known: dict[JobKind, set[str]] = {}

    async def of(self, kind: JobKind) -> set[str]:
        if kind not in self.known:
            self.known[kind] = await self.service.known_platforms(kind)
        return self.known[kind]


async def batch_spec(owner: Owner, index: int, raw: Any, platforms: _Platforms) -> JobSpec:
    """Validate spec `index` of a batch (422 located under `["body", "jobs", index]`)."""
    where: list[str | int] = ["body", "jobs", index]
    try:
        body = JobIn.model_validate(raw)
    except ValidationError as exc:
        errors = field_errors(exc.errors(include_input=False, include_url=False))
        raise InvalidInput([{**e, "loc": [*where, *e["loc"]]} for e in errors]) from None
    return spec_from_body(
        body, await platforms.of(body.kind), max_items=owner.tier.max_job_items, where=where
    )


def _not_attempted(cause: ServiceUnavailable, index: int) -> ServiceUnavailable:
    detail = f"Not attempted: the backend became unavailable at job {index} of this batch"
    if isinstance(cause, DependencyUnavailable):
        dependency = str(cause.extra.get("dependency", "backend"))
        retry = int(cause.headers.get("Retry-After", "1"))
        return DependencyUnavailable(dependency, detail, retry_after=retry)
    return ServiceUnavailable(detail, headers=dict(cause.headers))


async def submit_batch(
    service: JobService, owner: Owner, raw_jobs: Sequence[Any], *, max_jobs: int
) -> list[BatchEntry]:
    """Submit each spec on its own; outcomes in order (see the module docstring on 503s)."""
    if len(raw_jobs) > max_jobs:
        raise invalid_field(
            "body", "jobs", msg=f"at most {max_jobs} jobs per batch", type="too_long"
        )
    platforms = _Platforms(service)
    entries: list[BatchEntry] = []
    created = 0
    for index, raw in enumerate(raw_jobs):
        try:
            spec = await batch_spec(owner, index, raw, platforms)
            job = await service.submit(owner, spec)
        except ServiceUnavailable as exc:
            if created == 0:
                raise
            entries.append(BatchEntry(index, error=exc))
            entries += [
                BatchEntry(later, error=_not_attempted(exc, index))
                for later in range(index + 1, len(raw_jobs))
            ]
            break
        except GatewayError as exc:
            entries.append(BatchEntry(index, error=exc))
        else:
            created += 1
            entries.append(BatchEntry(index, job=job))
    return entries
