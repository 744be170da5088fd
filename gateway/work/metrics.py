"""Worker-plane metrics of one audience (parcel or party registry).

Counters are incremented where the event happens. Queue gauges are computed from Redis
by the reaper loop of every replica, so all replicas export identical values: dashboards
and alerts aggregate them with `max without (instance)` (never `sum`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.kit.memo import PerOwner


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
            "Results received, by outcome (succeeded|failed_retry|dead_lettered|duplicate|stale).",
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
            "Tasks per state (ready|delayed|leased|dead); cluster-wide, aggregate with max.",
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

    @classmethod
    def for_registry(cls, registry: CollectorRegistry) -> WorkerMetrics:
        """The metrics of `registry`, created on first use (apps may be built twice)."""
        return _worker_metrics(registry)


_worker_metrics: PerOwner[CollectorRegistry, WorkerMetrics] = PerOwner(WorkerMetrics)
