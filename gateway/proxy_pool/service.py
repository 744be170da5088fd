"""The outbound proxy pool: per-platform leases, ban cool-downs, error scores.

One pool serves both internal audiences. Proxies are outbound IP addresses and a ban
is something a *target platform* does to an IP: when a party worker gets proxy 7 banned
on a county site, a parcel worker must not walk into the same ban a second later. So
the inventory and every piece of state are shared, and keyed by platform, not by
audience; only the counters are per audience (the port that served the call).

Data model (Redis, under `<prefix>proxy:`; PostgreSQL `proxies` is the source of truth
for the inventory and is re-synced every `PROXY_SYNC_INTERVAL_S` or when Redis lost it):

* `inv` hash id → URL; `platforms` set of platforms seen;
* per platform: `avail:<pf>` zset of free proxies scored (error tier * 1e13 + last use
  in ms), so `ZRANGE 0 0` is the healthiest, least recently used one; `cool:<pf>` zset
  id → end of ban cool-down; `inuse:<pf>` hash id → lease id; `st:<pf>` hash of error
  counts, consecutive bans and last use;
* `leases` zset lease id → expiry, `lease:<id>` hash (state, platform, proxy, token,
  worker).

A lease is exclusive per (proxy, platform): one worker at a time drives a given IP at a
given site, while the same IP may serve another site concurrently. A ban cools the
proxy down on that platform only, for `PROXY_BAN_BASE_S * 2^(consecutive bans - 1)`
capped at `PROXY_BAN_CAP_S`; an `ok` release resets the ban streak. An `error` adds one
to the proxy's error count on that platform (one tier lower in preference); an `ok`
halves it. Expired leases are reclaimed by the next lease call (any platform) and by
each app's upkeep loop, so a crashed worker never strands a proxy.

A lease belongs to its holder, the token that leased it (its id) and the worker id: a
release or rotate by anyone else is refused (403 `not_lease_holder`), logged and counted,
because a release as `banned` cools the proxy down for every worker on that platform and
a rotate would hand the holder's slot to the caller. The same token and worker id after
a worker restart is the same holder.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.core.audience import Audience
from gateway.core.errors import DependencyUnavailable, Forbidden, NotFound, ServiceUnavailable
from gateway.core.resources import Resources
from gateway.core.settings.proxy_pool import ProxyPoolSettings
from gateway.kit.outage import is_database_down, redis_guard
from gateway.proxy_pool import scripts
from gateway.proxy_pool.metrics import ProxyMetrics, proxy_metrics
from gateway.proxy_pool.repository.proxies import list_proxies

Outcome = Literal["ok", "banned", "error"]
Operation = Literal["release", "rotate"]
ReleaseStatus = Literal["released", "expired", "already_released"]
LEASE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
STATES = ("available", "leased", "cooling")

# A released or expired lease record is kept this long past its expiry so a late
# release (e.g. "banned", learnt after the lease ran out) still finds it.
LEASE_RECORD_GRACE_S = 3_600
# Expired leases handed back per script call; the upkeep loop catches up on the rest.
RECLAIM_LIMIT = 100
# When PostgreSQL is down at sync time, the Redis copy is trusted again this long.
STALE_SYNC_RETRY_S = 5.0

log = structlog.get_logger("gateway.proxy_pool")


@dataclass(frozen=True)
class ProxyHolder:
    """Who holds a proxy lease: the id of the token that leased it and the worker id."""

    token_id: int
    worker_id: str

    def args(self) -> list[str | int]:
        """The holder as script arguments (token id, worker id)."""
        return [str(self.token_id), self.worker_id]


@dataclass(frozen=True)
class ProxyLease:
    """A proxy leased to one worker for one platform; `proxy_url` carries credentials."""

    proxy_lease_id: str
    proxy_id: str
    proxy_url: str
    platform: str
    expires_at: datetime


@dataclass(frozen=True)
class Release:
    """What a release did."""

    status: ReleaseStatus
    platform: str
    proxy_id: str
    cooldown_s: float


@dataclass(frozen=True)
class PlatformState:
    """Counts of one platform's proxies by state."""

    platform: str
    available: int
    leased: int
    cooling: int


@dataclass(frozen=True)
class ProxyPlatformStatus:
    """One proxy on one platform, for operators."""

    platform: str
    proxy_id: str
    state: str
    errors: int
    bans: int
    cool_until: datetime | None


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _exhausted(platform: str, retry_after: int, detail: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        detail,
        headers={"Retry-After": str(retry_after)},
        extra={"reason": "no_proxy_available", "platform": platform},
    )


class ProxyPool:
    """Lease, release and rotate proxies; keep the Redis pool in step with PostgreSQL."""

    def __init__(
        self,
        *,
        redis: Redis,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: ProxyPoolSettings,
        key_base: str,
        metrics: ProxyMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._sessionmaker = sessionmaker
        self._settings = settings
        self._base = key_base
        self._metrics = metrics
        self._clock = clock
        self._scripts = scripts.scripts_for(redis)

    @classmethod
    def for_resources(
        cls, resources: Resources, audience: Audience | None = None, **kwargs: Any
    ) -> ProxyPool:
        """The pool on the process's shared resources, counting into `audience`'s registry."""
        metrics = None
        if audience is not None:
            metrics = proxy_metrics(resources.metrics.registry(audience))
        return cls(
            redis=resources.redis,
            sessionmaker=resources.sessionmaker,
            settings=resources.settings,
            key_base=resources.key("proxy", ""),
            metrics=metrics,
            **kwargs,
        )

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _run(self, name: str, *args: str | int) -> Any:
        tier = self._settings.proxy_max_error_tier
        argv: list[str | int] = [self._base, self._now_ms(), tier, *args]
        with redis_guard():
            return await self._scripts[name](args=argv)

    def _lease_args(self, lease_id: str) -> list[str | int]:
        return [
            lease_id,
            int(self._settings.proxy_lease_ttl_s * 1000),
            LEASE_RECORD_GRACE_S * 1000,
            RECLAIM_LIMIT,
        ]

    def _release_args(
        self, holder: ProxyHolder, lease_id: str, outcome: Outcome
    ) -> list[str | int]:
        return [
            lease_id,
            outcome,
            int(self._settings.proxy_ban_base_s * 1000),
            int(self._settings.proxy_ban_cap_s * 1000),
            *holder.args(),
        ]

    async def lease(self, holder: ProxyHolder, platform: str) -> ProxyLease:
        """Lease the best free proxy for `platform` to `holder`, or raise 503 with
        Retry-After."""
        lease_id = "pl_" + uuid.uuid4().hex
        args = [platform, *holder.args(), *self._lease_args(lease_id)]
        result = await self._run("lease", *args)
        if result[0] == -1:
            await self.sync()
            result = await self._run("lease", *args)
        return self._leased(platform, lease_id, result)

    def _leased(self, platform: str, lease_id: str, result: Sequence[Any]) -> ProxyLease:
        if result[0] != 1:
            self._count_lease(platform, "exhausted")
            inventory, wait_ms = int(result[1]), int(result[2])
            if inventory == 0:
                raise _exhausted(
                    platform,
                    self._settings.proxy_empty_retry_after_s,
                    "The proxy inventory is empty",
                )
            retry = self._settings.proxy_retry_after_s
            if wait_ms >= 0:
                retry = max(1, min(retry, math.ceil(wait_ms / 1000)))
            raise _exhausted(
                platform, retry, f"Every proxy for {platform} is leased or cooling down"
            )
        self._count_lease(platform, "leased")
        return ProxyLease(
            proxy_lease_id=lease_id,
            proxy_id=_s(result[1]),
            proxy_url=_s(result[2]),
            platform=platform,
            expires_at=datetime.fromtimestamp(int(result[3]) / 1000, UTC),
        )

    async def release(
        self, holder: ProxyHolder, lease_id: str, outcome: Outcome, status_code: int | None = None
    ) -> Release:
        """Give a proxy back, reporting how it did; 404 for an unknown lease, 403 for
        one `holder` does not hold."""
        result = await self._run("release", *self._release_args(holder, lease_id, outcome))
        return self._released("release", holder, lease_id, outcome, status_code, result)

    def _released(
        self,
        operation: Operation,
        holder: ProxyHolder,
        lease_id: str,
        outcome: Outcome,
        status_code: int | None,
        result: Sequence[Any],
    ) -> Release:
        status = _s(result[0])
        if status == "unknown":
            raise NotFound("Unknown proxy lease (never issued, or expired long ago)")
        if status == "not_holder":
            raise self._refused(operation, holder, lease_id, _s(result[1]))
        released = Release(
            status=status,  # type: ignore[arg-type]  # the script returns one of the three
            platform=_s(result[1]),
            proxy_id=_s(result[2]),
            cooldown_s=int(result[3]) / 1000,
        )
        if status != "already_released" and self._metrics is not None:
            self._metrics.releases.labels(released.platform, outcome).inc()
            if released.cooldown_s > 0:
                self._metrics.bans.labels(released.platform).inc()
        if released.cooldown_s > 0:
            log.info(
                "proxy_banned",
                proxy_id=released.proxy_id,
                platform=released.platform,
                cooldown_s=released.cooldown_s,
                status_code=status_code,
                worker_id=_s(result[4]),
            )
        return released

    def _refused(
        self, operation: Operation, holder: ProxyHolder, lease_id: str, platform: str
    ) -> Forbidden:
        if self._metrics is not None:
            self._metrics.holder_refusals.labels(operation).inc()
        log.warning(
            "not_lease_holder",
            operation=operation,
            token_id=holder.token_id,
            worker_id=holder.worker_id,
            proxy_lease_id=lease_id,
            platform=platform,
        )
        return Forbidden(
            "This proxy lease is held by another token or worker id",
            extra={"reason": "not_lease_holder"},
        )

    async def rotate(
        self, holder: ProxyHolder, lease_id: str, outcome: Outcome, status_code: int | None = None
    ) -> tuple[Release, ProxyLease]:
        """Release `holder`'s lease and lease it another proxy of that platform, in one
        atomic step."""
        new_id = "pl_" + uuid.uuid4().hex
        args = [*self._release_args(holder, lease_id, outcome), *self._lease_args(new_id)]
        result = await self._run("rotate", *args)
        if result[0][0] == -1:
            await self.sync()
            result = await self._run("rotate", *args)
        released = self._released("rotate", holder, lease_id, outcome, status_code, result[0])
        try:
            return released, self._leased(released.platform, new_id, result[1])
        except ServiceUnavailable as exc:
            exc.extra["released"] = released.status
            raise

    def _count_lease(self, platform: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.leases.labels(platform, outcome).inc()

    async def sync(self) -> int:
        """Copy the PostgreSQL inventory into Redis; returns how many proxies it holds."""
        try:
            async with self._sessionmaker() as session:
                rows = await list_proxies(session)
        except Exception as exc:
            if not is_database_down(exc):
                raise
            # Keep serving from the Redis copy if there is one: a PostgreSQL outage
            # must not take proxies away from workers that are scraping right now.
            known = await self._redis.hlen(self._base + "inv")
            if not known:
                raise DependencyUnavailable("database") from exc
            log.warning("proxy_sync_failed", error=type(exc).__name__, kept=known)
            await self._redis.set(self._base + "synced", "1", px=int(STALE_SYNC_RETRY_S * 1000))
            return int(known)
        pairs: list[str | int] = []
        for row in rows:
            pairs += [str(row.id), row.url]
        ttl_ms = int(self._settings.proxy_sync_interval_s * 1000)
        result = await self._run("sync", ttl_ms, *pairs)
        return int(result[0])

    async def tick(self) -> list[PlatformState]:
        """Reclaim expired leases, end cool-downs, refresh gauges; returns the counts."""
        result = await self._run("tick", RECLAIM_LIMIT)
        if int(result[0]) == 0:
            await self.sync()
        states = [
            PlatformState(_s(result[i]), int(result[i + 1]), int(result[i + 2]), int(result[i + 3]))
            for i in range(2, len(result), 4)
        ]
        if self._metrics is not None:
            self._metrics.platforms_seen(s.platform for s in states)
            for s in states:
                gauge = self._metrics.proxies
                gauge.labels(s.platform, "available").set(s.available)
                gauge.labels(s.platform, "leased").set(s.leased)
                gauge.labels(s.platform, "cooling").set(s.cooling)
        return states

    async def status(self) -> list[ProxyPlatformStatus]:
        """Per proxy and platform: state, error count, ban streak, cool-down end."""
        result = await self._run("status")
        out = []
        for i in range(0, len(result), 6):
            cool_ms = int(float(_s(result[i + 5])))
            out.append(
                ProxyPlatformStatus(
                    platform=_s(result[i]),
                    proxy_id=_s(result[i + 1]),
                    state=_s(result[i + 2]),
                    errors=int(_s(result[i + 3])),
                    bans=int(_s(result[i + 4])),
                    cool_until=(
                        datetime.fromtimestamp(cool_ms / 1000, UTC) if cool_ms > 0 else None
                    ),
                )
            )
        return out
