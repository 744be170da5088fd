"""Worker-plane metrics of one audience (parcel or party registry).

Counters are incremented where the event happens. Queue gauges are computed from Redis
by the reaper loop of every replica, so all replicas export identical values: dashboards
and alerts aggregate them with `max without (instance)` (never `sum`).

Zeros before the first event: a counter child that was never incremented is not
exported at all, so a quiet system's panels would say "No data" instead of 0. Platforms
are not known up front (any producer may name one), so they are declared when first
seen: the reaper passes every platform that has a queue in Redis to `platforms_seen`,
which creates every per-platform child (each completion outcome too) at 0. Nothing is
invented: a platform gets series once it exists in the queue.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.kit.memo import PerOwner

# Every `outcome` of `gateway_tasks_completed` (results.py increments no other).
COMPLETION_OUTCOMES = (
    "succeeded",
    "failed_retry",
    "dead_lettered",
    "cancelled",
    "duplicate",
    "stale",
)
# Where a task is handed out for its first attempt (Celery routing, gateway/work/routing/).
BACKENDS = ("native", "celery")
# From a publish to Celery to its result consumed: a fast task's round trip, up to a
# backlog waiting out a long lease.
CELERY_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
# Where a `TaskHooks` call can fail (see hooks.py).
HOOK_STAGES = ("on_commit", "after_commit", "catch_up", "on_dead")


class WorkerMetrics:
    """The worker-plane series, registered once per audience registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.enqueued = Counter(
            "gateway_tasks_enqueued", "Tasks enqueued.", ["platform"], registry=r
        )
        self.leased = Counter("gateway_tasks_leased", "Tasks leased.", ["platform"], registry=r)
        self.completed = Counter(
            "gateway_tasks_completed",
            "Results received, by outcome "
            "(succeeded|failed_retry|dead_lettered|cancelled|duplicate|stale).",
            ["platform", "outcome"],
            registry=r,
        )
        self.lease_expirations = Counter(
            "gateway_lease_expirations", "Leases reclaimed by the reaper.", ["platform"], registry=r
        )
        self.retries = Counter(
            "gateway_task_retries", "Tasks requeued with backoff.", ["platform"], registry=r
        )
        self.dead_lettered = Counter(
            "gateway_tasks_dead_lettered", "Tasks moved to dead letters.", ["platform"], registry=r
        )
        self.holder_refusals = Counter(
            "gateway_lease_holder_refusals",
            "Results and heartbeat lease ids refused because another token or worker id "
            "holds the lease, by operation (result|heartbeat).",
            ["operation"],
            registry=r,
        )
        self.results_committed = Counter(
            "gateway_results_committed",
            "Succeeded results committed to PostgreSQL.",
            ["platform"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "gateway_queue_depth",
            "Tasks per state (ready|delayed|leased|dead|celery_ready); cluster-wide, aggregate "
            "with max.",
            ["platform", "state"],
            registry=r,
        )
        self.oldest_ready_age = Gauge(
            "gateway_queue_oldest_ready_age_seconds",
            "Age of the oldest ready task; cluster-wide, aggregate with max.",
            ["platform"],
            registry=r,
        )
        self.workers_active = Gauge(
            "gateway_workers_active",
            "Workers that heartbeated within WORKER_EXPIRY_S; cluster-wide, aggregate with max.",
            registry=r,
        )
        self.heartbeat_age_max = Gauge(
            "gateway_worker_heartbeat_age_max_seconds",
            "Oldest last heartbeat among active workers; cluster-wide, aggregate with max.",
            registry=r,
        )
        self.hook_failures = Counter(
            "gateway_task_hook_failures",
            "Task hook calls that raised, by stage: on_commit (the results batch was "
            "refused with 503 and is retried), after_commit, catch_up and on_dead (only "
            "logged).",
            ["stage"],
            registry=r,
        )
        self.routed = Counter(
            "gateway_tasks_routed",
            "Tasks handed out for their first attempt, by backend: native (leased by a HTTP "
            "worker) or celery (published to Celery). The realised Celery share is "
            "celery / (celery + native).",
            ["platform", "backend"],
            registry=r,
        )
        self.celery_share = Gauge(
            "gateway_celery_route_share",
            "Share of a Celery route's tasks sent to Celery, by source: configured "
            "(CELERY_ROUTES) or in_force (set at runtime, else configured); kind is the "
            "route's origin or *. Cluster-wide, aggregate with max. The realised share is "
            "in gateway_tasks_routed_total.",
            ["platform", "kind", "source"],
            registry=r,
        )
        # Registered with or without routes: no labels, so exported at 0 from the start.
        self.celery_results_lag = Histogram(
            "gateway_celery_results_lag_seconds",
            "From a task's publish to Celery to its result consumed by the gateway "
            "(broker queueing and run time included; publisher's and consumer's clocks).",
            buckets=CELERY_LAG_BUCKETS,
            registry=r,
        )
        self._seen: set[str] = set()
        for operation in ("result", "heartbeat"):  # known up front: exported at 0
            self.holder_refusals.labels(operation)
        for stage in HOOK_STAGES:
            self.hook_failures.labels(stage)

    def platforms_seen(self, platforms: Iterable[str]) -> None:
        """Export every per-platform counter of these platforms, at 0 until counted."""
        for platform in platforms:
            if platform in self._seen:
                continue
            self._seen.add(platform)
            for counter in (
                self.enqueued,
                self.leased,
                self.lease_expirations,
                self.retries,
                self.dead_lettered,
                self.results_committed,
            ):
                counter.labels(platform)
            for outcome in COMPLETION_OUTCOMES:
                self.completed.labels(platform, outcome)
            for backend in BACKENDS:
                self.routed.labels(platform, backend)

    @classmethod
    def for_registry(cls, registry: CollectorRegistry) -> WorkerMetrics:
        """The metrics of `registry`, created on first use (apps may be built twice)."""
        return _worker_metrics(registry)


_worker_metrics: PerOwner[CollectorRegistry, WorkerMetrics] = PerOwner(WorkerMetrics)
