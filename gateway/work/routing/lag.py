"""The latest Celery results lag per audience, shared by every replica through Redis.

The histogram (`gateway_celery_results_lag_seconds`) is per replica, and the admin
status endpoint runs on the public port, which consumes no results. So each results
consumer also writes its latest observation into the hash `<prefix>celery:lag`
(field: audience; value: JSON with the lag and when it was consumed), at most once per
`WRITE_EVERY_S`: a bounded cost per consumer, not one write per result.
"""

from __future__ import annotations

import json
import time
from typing import Any

from redis.asyncio import Redis

WRITE_EVERY_S = 1.0


class LagRecorder:
    """Writes one audience's latest results lag, throttled."""

    def __init__(self, redis: Redis, key: str, audience: str) -> None:
        self.redis = redis
        self.key = key
        self.audience = audience
        self._written_at = 0.0

    async def record(self, lag_s: float) -> None:
        """Store `lag_s` as the audience's latest, unless one was stored < 1 s ago."""
        now = time.time()
        if now - self._written_at < WRITE_EVERY_S:
            return
        self._written_at = now
        value = json.dumps({"lag_s": round(lag_s, 3), "at": now})
        await self.redis.hset(self.key, self.audience, value)


async def latest_lags(redis: Redis, key: str) -> dict[str, dict[str, Any]]:
    """Per audience: the latest lag (s), when it was consumed (Unix s) and how long ago."""
    raw = await redis.hgetall(key)
    now = time.time()
    out: dict[str, dict[str, Any]] = {}
    for field, value in raw.items():
        audience = field.decode() if isinstance(field, bytes) else str(field)
        try:
            data = json.loads(value)
            lag, at = float(data["lag_s"]), float(data["at"])
        except (ValueError, KeyError, TypeError):
            continue
        out[audience] = {"lag_s": lag, "consumed_at": at, "age_s": round(max(0.0, now - at), 3)}
    return out
