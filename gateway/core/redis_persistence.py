"""What Redis keeps on disk, read at start-up, and the production refusal.

Queued and leased tasks live only in Redis, so Redis's persistence decides what a Redis
restart loses (README, "Redis persistence: what a restart loses"):

- `none`: everything queued or leased.
- `rdb`: what changed since the last snapshot; tasks completed after it run again.
- `aof`: with `appendfsync everysec` about one second of writes on a host crash, nothing
  on a Redis restart; with `always` nothing.

The mode is read with `CONFIG GET appendonly appendfsync save`. Managed Redis services
often disable or rename `CONFIG`; then `INFO persistence` says whether AOF is on
(`aof_enabled`) but not the fsync policy, nor whether snapshots are configured, so a
non-AOF server reads as `unknown`. If neither answers (Redis down at start, an ACL that
denies both) the mode is `unknown` too. Production refuses every mode but `aof` unless
`REDIS_ALLOW_VOLATILE=true` records that the operator accepts the loss: a mode the
gateway cannot verify is treated as the loss it might be.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.core.redis import idempotent

log = structlog.get_logger("gateway.redis")

MODES = ("aof", "rdb", "none", "unknown")
_FIX = (
    "enable AOF on Redis (appendonly yes, appendfsync everysec), or set "
    "REDIS_ALLOW_VOLATILE=true to accept losing queued tasks when Redis restarts"
)


class RedisPersistenceRefused(Exception):
    """Production start refused: Redis does not keep queued work across a restart."""


@dataclass(frozen=True)
class RedisPersistence:
    """Redis's persistence as read at start-up."""

    mode: str  # one of MODES
    appendfsync: str | None = None  # always | everysec | no, when CONFIG answered
    source: str = "config"  # config | info | none: where the answer came from

    @property
    def durable(self) -> bool:
        """Whether a Redis restart keeps queued work (AOF on)."""
        return self.mode == "aof"

    def as_dict(self) -> dict[str, str | None]:
        """The shape `/ready` reports."""
        return {"mode": self.mode, "appendfsync": self.appendfsync, "source": self.source}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def read_persistence(redis: Redis) -> RedisPersistence:
    """Ask Redis what it keeps on disk: `CONFIG GET`, else `INFO persistence`."""
    with idempotent():
        try:
            raw = await redis.config_get("appendonly")
            raw |= await redis.config_get("appendfsync")
            raw |= await redis.config_get("save")
        except RedisError:
            pass  # CONFIG disabled or renamed by the provider: try INFO below
        else:
            config = {_text(k): _text(v) for k, v in raw.items()}
            if config.get("appendonly") == "yes":
                return RedisPersistence("aof", config.get("appendfsync"), "config")
            return RedisPersistence("rdb" if config.get("save", "").strip() else "none")
        try:
            info = await redis.info("persistence")
        except RedisError:
            return RedisPersistence("unknown", source="none")
    if str(info.get("aof_enabled")) == "1":
        return RedisPersistence("aof", source="info")
    return RedisPersistence("unknown", source="info")


def enforce(persistence: RedisPersistence, *, production: bool, allow_volatile: bool) -> None:
    """Refuse a production start on non-durable Redis; log the choice either way."""
    if persistence.durable:
        log.info("redis_persistence", **persistence.as_dict())
        return
    if production and not allow_volatile:
        log.error("redis_persistence_refused", **persistence.as_dict(), fix=_FIX)
        raise RedisPersistenceRefused(
            f"ENVIRONMENT=production refuses Redis without AOF (mode {persistence.mode}): {_FIX}"
        )
    # Info, not warning: operator commands log warnings to the output they print, and
    # outside production (or with the loss accepted) this is a known choice, not a fault.
    log.info(
        "redis_persistence_volatile",
        **persistence.as_dict(),
        detail="a Redis restart loses queued and leased tasks (README: Redis persistence)",
    )


class PersistenceCollector(Collector):
    """`gateway_redis_persistence{mode}`: 1 for the mode read at start, 0 for the others."""

    def __init__(self, persistence: RedisPersistence) -> None:
        self.persistence = persistence

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "gateway_redis_persistence",
            "Redis persistence read at start-up (aof|rdb|none|unknown); 1 marks the mode.",
            labels=["mode"],
        )
        for mode in MODES:
            family.add_metric([mode], 1 if mode == self.persistence.mode else 0)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("gateway_redis_persistence", "", labels=["mode"])


def export(registry: CollectorRegistry, persistence: RedisPersistence) -> None:
    """Export `persistence` on the process registry."""
    registry.register(PersistenceCollector(persistence))
