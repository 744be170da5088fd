"""Queue and worker gauges, read from Redis (by the reaper loop, on every replica)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.kit.outage import redis_guard
from gateway.work.queue import WorkQueue

STATES = ("ready", "delayed", "leased", "dead")


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
    with redis_guard():
        now_s, now_us = await redis.time()
        now_ms = now_s * 1000 + now_us // 1000
        async with redis.pipeline(transaction=False) as pipe:
            for p in platforms:
                for state in STATES:
                    pipe.zcard(queue.key(state, p))
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
