"""Metrics of client jobs, one set per registry.

Jobs are created on the public port and moved by results on the worker ports, so each
series goes to the registry of the port whose code counted it: `created` and `finished`
by cancels/expiry on the public port, item outcomes and job completions by results on
the worker ports (the tracker). Sum over `audience` for the deployment's totals. Every
label value is exported at 0 from the start.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from gateway.jobs.models import JobKind
from gateway.kit.memo import PerOwner

ITEM_OUTCOMES = ("succeeded", "failed", "cancelled", "expired")
DOWNLOAD_OUTCOMES = ("completed", "aborted", "busy")
UPKEEP_ACTIONS = ("rolled_back", "republished", "reconciled", "reattached", "expired")
_FINAL = ("completed", "partially_failed", "failed", "cancelled", "expired")


@dataclass(frozen=True)
class JobMetrics:
    """The jobs capability's series in one registry."""

    created: Counter
    finished: Counter
    items: Counter
    upkeep: Counter
    publish_failures: Counter
    downloads: Counter

    def finished_job(self, kind: str, state: str) -> None:
        """Count a job that reached a terminal state."""
        if state in _FINAL:
            self.finished.labels(kind, state).inc()


def _build(registry: CollectorRegistry) -> JobMetrics:
    metrics = JobMetrics(
        created=Counter(
            "gateway_jobs_created_total",
            "Client jobs created (submission committed and queued), by kind.",
            ["kind"],
            registry=registry,
        ),
        finished=Counter(
            "gateway_jobs_finished_total",
            "Client jobs that reached a terminal state, by kind and state.",
            ["kind", "state"],
            registry=registry,
        ),
        items=Counter(
            "gateway_job_items_finished_total",
            "Job items that left pending, by outcome (each item exactly once).",
            ["outcome"],
            registry=registry,
        ),
        upkeep=Counter(
            "gateway_job_upkeep_total",
            "Job upkeep actions: submissions rolled back, events re-published, items "
            "reconciled or re-attached, jobs expired.",
            ["action"],
            registry=registry,
        ),
        publish_failures=Counter(
            "gateway_job_publish_failures_total",
            "Event publishes that failed after a commit (the upkeep relay repairs them).",
            registry=registry,
        ),
        downloads=Counter(
            "gateway_job_downloads_total",
            "Result downloads by format and outcome: completed, aborted (the client left "
            "or the stream failed), busy (refused: DOWNLOAD_MAX_CONCURRENT in progress).",
            ["format", "outcome"],
            registry=registry,
        ),
    )
    for fmt in ("csv", "ndjson"):
        for outcome in DOWNLOAD_OUTCOMES:
            metrics.downloads.labels(fmt, outcome)
    for kind in JobKind:
        metrics.created.labels(kind.value)
        for state in _FINAL:
            metrics.finished.labels(kind.value, state)
    for outcome in ITEM_OUTCOMES:
        metrics.items.labels(outcome)
    for action in UPKEEP_ACTIONS:
        metrics.upkeep.labels(action)
    return metrics


job_metrics: PerOwner[CollectorRegistry, JobMetrics] = PerOwner(_build)
