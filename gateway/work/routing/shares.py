"""Runtime shares: one Redis hash per deployment, read by every replica at most
`REFRESH_S` old.

`PUT /v1/admin/routing` and `gateway routing set` write a route's share into the hash
`<prefix>celery:shares` (field: route id; value: JSON with the share, who set it and when)
and push the same entry onto `<prefix>celery:shares:log` (the last `LOG_MAX` changes).
A route without a field has its configured share (`CELERY_ROUTES`).

Readers do not subscribe: each process re-reads the hash when its copy is older than
`REFRESH_S` (one HGETALL, only while tasks are being enqueued), so a change reaches every
replica within a second by construction, with no subscriber to lose or reconnect. The
share a task gets is decided once, when it is first enqueued (see `router.py`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import structlog
from redis.asyncio import Redis

from gateway.kit.outage import redis_guard

log = structlog.get_logger("gateway.work.routing")

REFRESH_S = 0.5
LOG_MAX = 200


@dataclass(frozen=True)
class ShareEntry:
    """A share set at runtime, by whom and when."""

    route: str
    share: float
    by: str
    at: str

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(asdict(self), separators=(",", ":"))


def _entry(route: str, raw: bytes | str) -> ShareEntry | None:
    try:
        data = json.loads(raw)
        return ShareEntry(route, float(data["share"]), str(data["by"]), str(data["at"]))
    except (ValueError, KeyError, TypeError):
        log.warning("routing_share_unreadable", route=route)
        return None


class ShareStore:
    """The runtime shares of one deployment."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis = redis
        self.key = key
        self.log_key = key + ":log"

    async def read(self) -> dict[str, ShareEntry]:
        """Every share set at runtime, by route id."""
        with redis_guard():
            raw = await self.redis.hgetall(self.key)
        out = {}
        for field, value in raw.items():
            route = field.decode() if isinstance(field, bytes) else str(field)
            entry = _entry(route, value)
            if entry is not None:
                out[route] = entry
        return out

    async def write(self, route: str, share: float, by: str) -> ShareEntry:
        """Set `route`'s share, recording who and when (the caller checked the route)."""
        entry = ShareEntry(route, share, by, datetime.now(UTC).isoformat())
        with redis_guard():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.key, route, entry.to_json())
                pipe.lpush(self.log_key, entry.to_json())
                pipe.ltrim(self.log_key, 0, LOG_MAX - 1)
                await pipe.execute()
        return entry

    async def history(self, limit: int = 20) -> list[ShareEntry]:
        """The latest changes, newest first."""
        with redis_guard():
            raw = await self.redis.lrange(self.log_key, 0, limit - 1)
        out = []
        for value in raw:
            try:
                route = str(json.loads(value)["route"])
            except (ValueError, KeyError, TypeError):
                continue
            entry = _entry(route, value)
            if entry is not None:
                out.append(entry)
        return out


class SharesCache:
    """A process's copy of the runtime shares, at most `REFRESH_S` old."""

    def __init__(self, store: ShareStore, refresh_s: float = REFRESH_S) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._shares: dict[str, ShareEntry] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def current(self) -> dict[str, ShareEntry]:
        """The shares set at runtime (re-read when the copy is too old)."""
        loop = asyncio.get_running_loop()
        if self._read_at is not None and loop.time() - self._read_at < self.refresh_s:
            return self._shares
        async with self._lock:
            if self._read_at is None or loop.time() - self._read_at >= self.refresh_s:
                self._shares = await self.store.read()
                self._read_at = loop.time()
        return self._shares
