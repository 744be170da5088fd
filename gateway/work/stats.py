"""Queue and worker gauges, read from Redis (by the reaper loop, on every replica).

The gauges follow Redis, including when Redis forgets: a platform whose keys are gone
(Redis restarted without persistence, a flush) is no longer in the snapshot, and its
series are removed, exactly as a freshly started gateway would never have created
them. Overwriting only the platforms Redis still knows would keep exporting the last
depth and oldest-ready age of the vanished tasks until the gateway restarts: phantom
work for dashboards and alerts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from gateway.core.redis import idempotent
from gateway.kit.outage import redis_guard
from gateway.work.metrics import WorkerMetrics
from gateway.work.queue import WorkQueue

# The `state` label and the sorted set it counts; `celery_ready`: tasks routed to Celery
# that wait for the dispatcher (`cready:<p>`, see common.lua), not for HTTP workers. A
# leased Celery task counts in `leased` like any other.
STATE_SETS = {
    "ready": "ready",
    "delayed": "delayed",
    "leased": "leased",
    "dead": "dead",
    "celery_ready": "cready",
}
STATES = tuple(STATE_SETS)


@dataclass(frozen=True)
class QueueStats:
    """A snapshot of one audience's queue."""

    depth: dict[tuple[str, str], int]
    oldest_ready_age_s: dict[str, float]
    workers_active: int
    heartbeat_age_max_s: float


async def queue_stats(queue: WorkQueue, worker_expiry_s: float) -> QueueStats:
    """Depth per (platform, state), oldest ready age, active workers, in one pipeline."""
    platforms = await queue.platforms()
    redis = queue.redis
    # Reads only: safe to repeat on a fresh connection after a stale one fails.
    with redis_guard(), idempotent():
        now_s, now_us = await redis.time()
        now_ms = now_s * 1000 + now_us // 1000
        async with redis.pipeline(transaction=False) as pipe:
            for p in platforms:
                for state in STATES:
                    pipe.zcard(queue.key(STATE_SETS[state], p))
                pipe.zrange(queue.key("since", p), 0, 0, withscores=True)
            cutoff = now_ms - int(worker_expiry_s * 1000)
            pipe.zcount(queue.key("seen"), cutoff, "+inf")
            pipe.zrangebyscore(queue.key("seen"), cutoff, "+inf", start=0, num=1, withscores=True)
            raw = await pipe.execute()
    depth: dict[tuple[str, str], int] = {}
    oldest: dict[str, float] = {}
    i = 0
    for p in platforms:
        for state in STATES:
            depth[(p, state)] = int(raw[i])
            i += 1
        first = raw[i]
        i += 1
        oldest[p] = max(0.0, (now_ms - first[0][1]) / 1000) if first else 0.0
    active = int(raw[i])
    seen_first = raw[i + 1]
    age_max = max(0.0, (now_ms - seen_first[0][1]) / 1000) if seen_first else 0.0
    return QueueStats(depth, oldest, active, age_max)


def publish(metrics: WorkerMetrics, stats: QueueStats) -> None:
    """Write a snapshot to the gauges; platforms absent from it lose their series."""
    for (platform, state), depth in stats.depth.items():
        metrics.queue_depth.labels(platform, state).set(depth)
    for platform, age in stats.oldest_ready_age_s.items():
        metrics.oldest_ready_age.labels(platform).set(age)
    metrics.workers_active.set(stats.workers_active)
    metrics.heartbeat_age_max.set(stats.heartbeat_age_max_s)
    known = set(stats.oldest_ready_age_s)
    for family in metrics.queue_depth.collect():
        for sample in family.samples:
            if sample.labels["platform"] not in known:
                with contextlib.suppress(KeyError):  # removed by an earlier sample
                    metrics.queue_depth.remove(sample.labels["platform"], sample.labels["state"])
    for family in metrics.oldest_ready_age.collect():
        for sample in family.samples:
            if sample.labels["platform"] not in known:
                with contextlib.suppress(KeyError):
                    metrics.oldest_ready_age.remove(sample.labels["platform"])
