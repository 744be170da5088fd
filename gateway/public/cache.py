"""The shared response cache: one Redis for every gateway process, with single flight.

Key: `cache:GET:<normalised path>?<sorted validated query>#<tier>`. The tier is part of
the key (page-size caps differ by tier) but the user is not: public answers do not
depend on who asks, so one user's miss warms the cache for everyone of the same tier.
The key is readable so `gateway cache purge '/v1/properties/12-*'` can match it.

Freshness comes from the upstream's `Cache-Control` (`s-maxage`, then `max-age`), else a
per-route default; `no-store`, `no-cache` and `private` are never stored (X-Cache:
BYPASS). An entry lives in Redis for its max-age plus `CACHE_STALE_WINDOW_S`, so when
the upstream fails or its breaker is open, a recently expired entry is served with
X-Cache: STALE instead of a 503.

Single flight (which the open-source Kong/APISIX/Tyk/KrakenD caches lack): concurrent
misses for one key make exactly one upstream request, across processes. Inside a
process, followers await the leader's future. Across processes, the leader holds a Redis
lock (`SET NX PX`); followers elsewhere poll for the entry with backoff until the lock
is gone or `SINGLEFLIGHT_WAIT_S` passed, then fall through to the upstream themselves
(bounded wait: a stuck leader delays others, never blocks them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from gateway.audit.actions import Action
from gateway.audit.actor import Actor
from gateway.audit.service import AuditLog
from gateway.core.errors import DependencyUnavailable
from gateway.core.resources import Resources
from gateway.kit.outage import REDIS_FAILURE
from gateway.public.metrics import PublicMetrics
from gateway.public.origin import OriginResponse

# Redis failing, or an entry that no longer decodes: either way answer from the origin.
_UNREADABLE: tuple[type[BaseException], ...] = (*REDIS_FAILURE, ValueError)
log = structlog.get_logger("gateway.public.cache")

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_NEVER_STORE = ("no-store", "no-cache", "private")


# Entry and Served are built on every cache hit: slotted, not frozen (a frozen dataclass
# sets each field through object.__setattr__). Treat them as read-only all the same.
@dataclass(slots=True)
class Entry:
    """A stored response."""

    status: int
    body: bytes
    content_type: str
    etag: str
    stored_at: float
    max_age: int

    def age(self, now: float) -> int:
        """Whole seconds since it was stored."""
        return max(0, int(now - self.stored_at))

    def fresh(self, now: float) -> bool:
        """Within its max-age."""
        return now - self.stored_at < self.max_age

    def dumps(self) -> bytes:
        """Serialise: one JSON header line, then the body."""
        head = {
            "s": self.status,
            "ct": self.content_type,
            "e": self.etag,
            "t": self.stored_at,
            "m": self.max_age,
        }
        return json.dumps(head, separators=(",", ":")).encode() + b"\n" + self.body

    @classmethod
    def loads(cls, raw: bytes) -> Entry:
        """Parse what `dumps` wrote."""
        head, _, body = raw.partition(b"\n")
        status, content_type, etag, stored_at, max_age = _parse_head(head)
        return cls(status, body, content_type, etag, stored_at, max_age)


# A hot entry is read thousands of times with the same head line: parse it once.
@functools.lru_cache(maxsize=4096)
def _parse_head(head: bytes) -> tuple[int, str, str, float, int]:
    h = json.loads(head)
    return int(h["s"]), str(h["ct"]), str(h["e"]), float(h["t"]), int(h["m"])


@dataclass(slots=True)
class Served:
    """A response and how the cache produced it."""

    status: int
    body: bytes
    content_type: str
    etag: str
    x_cache: str  # HIT | MISS | STALE | BYPASS
    age: int
    cache_control: str


def strong_etag(body: bytes) -> str:
    """A strong validator derived from the body."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _directives(cache_control: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (cache_control or "").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            out[name.lower()] = value.strip().strip('"')
    return out


def freshness(response: OriginResponse, default_ttl: int) -> int:
    """Seconds the response may be served from the cache; 0 means do not store it."""
    if response.status != 200:
        return 0
    directives = _directives(response.cache_control)
    if any(d in directives for d in _NEVER_STORE):
        return 0
    for name in ("s-maxage", "max-age"):
        if name in directives:
            try:
                return max(0, int(directives[name]))
            except ValueError:
                return 0
    return default_ttl


def cache_key(path: str, query: tuple[tuple[str, str], ...], tier: str) -> str:
    """The readable cache key (without the deployment prefix)."""
    if path.startswith("/") and "//" not in path and not path.endswith("/"):
        normalised = path  # already normal: the common case, without the split and join
    else:
        normalised = "/" + "/".join(s for s in path.split("/") if s)
    encoded = "&".join(f"{k}={v}" for k, v in sorted(query))
    return f"GET:{normalised}?{encoded}#{tier}"


Fetch = Callable[[], Awaitable[OriginResponse]]
Prefetched = tuple[bytes | None] | None


class ResponseCache:
    """Get-or-fetch with single flight and stale-on-error; see the module docstring."""

    def __init__(self, resources: Resources, metrics: PublicMetrics) -> None:
        settings = resources.settings
        self._resources = resources
        self._redis = resources.redis
        self._metrics = metrics
        self.enabled = settings.cache_enabled
        self._stale_s = settings.cache_stale_window_s
        self._max_body = settings.cache_max_body_bytes
        self._wait_s = settings.singleflight_wait_s
        self._lock_ms = int(settings.singleflight_lock_s * 1000)
        self._timeout = settings.ratelimit_redis_timeout_s
        self._release = self._redis.register_script(_RELEASE)
        self._local: dict[str, asyncio.Future[Entry | None]] = {}
        self._hits = metrics.cache_requests.labels("hit")

    def _key(self, key: str) -> str:
        return self._resources.key("cache", key)

    def redis_key(self, key: str) -> str | None:
        """The Redis key of a cache key, for a lookup riding on another script; None when
        the cache is off."""
        return self._key(key) if self.enabled else None

    def fresh_hit(self, raw: bytes | None) -> Served | None:
        """A fresh entry (read in the limiter's round trip) served as a counted HIT.

        None when it is absent, expired or unreadable: `get_or_fetch` decides then.
        """
        if raw is None:
            return None
        try:
            entry = Entry.loads(raw)
        except ValueError:
            return None
        now = time.time()
        if not entry.fresh(now):
            return None
        self._hits.inc()
        return self._from_entry(entry, "HIT", now)

    async def _read(self, key: str) -> Entry | None:
        async with asyncio.timeout(self._timeout):
            raw = await self._redis.get(self._key(key))
        if raw is None:
            return None
        return Entry.loads(raw if isinstance(raw, bytes) else raw.encode())

    async def get_or_fetch(
        self, key: str, fetch: Fetch, default_ttl: int, *, prefetched: Prefetched = None
    ) -> Served:
        """Serve from the cache, or fetch once for every concurrent asker.

        `prefetched` is the entry already read in the limiter's round trip: `(raw,)` with
        `raw` None for "absent"; None means nothing was read yet.
        """
        if not self.enabled:
            return self._bypass(await fetch(), default_ttl)
        try:
            if prefetched is not None:
                raw = prefetched[0]
                entry = None if raw is None else Entry.loads(raw)
            else:
                entry = await self._read(key)
        except _UNREADABLE:
            # The cache is an optimisation: without Redis, answer from the upstream.
            return self._bypass(await fetch(), default_ttl)
        now = time.time()
        if entry is not None and entry.fresh(now):
            self._hits.inc()
            return self._from_entry(entry, "HIT", now)
        try:
            return await self._single_flight(key, fetch, default_ttl)
        except DependencyUnavailable:
            if entry is not None:  # expired, but within the stale window (else Redis dropped it)
                self._metrics.cache_requests.labels("stale").inc()
                return self._from_entry(entry, "STALE", time.time())
            raise

    async def _single_flight(self, key: str, fetch: Fetch, default_ttl: int) -> Served:
        pending = self._local.get(key)
        if pending is not None:
            try:
                async with asyncio.timeout(self._wait_s):
                    shared = await asyncio.shield(pending)
            except TimeoutError:
                self._metrics.singleflight_waits.labels("timeout").inc()
                return await self._fetch_and_store(key, fetch, default_ttl)
            if shared is not None:
                self._metrics.singleflight_waits.labels("served").inc()
                self._metrics.cache_requests.labels("hit").inc()
                return self._from_entry(shared, "HIT", time.time())
            return await self._fetch_and_store(key, fetch, default_ttl)

        future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        self._local[key] = future
        try:
            served, stored = await self._lead(key, fetch, default_ttl)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: there may be no follower
            raise
        else:
            future.set_result(stored)
            return served
        finally:
            del self._local[key]

    async def _lead(self, key: str, fetch: Fetch, ttl: int) -> tuple[Served, Entry | None]:
        """This process's leader: take the cross-process lock, or wait for its holder."""
        lock = self._resources.key("cachelock", key)
        token = secrets.token_hex(8)
        try:
            async with asyncio.timeout(self._timeout):
                acquired = await self._redis.set(lock, token, nx=True, px=self._lock_ms)
        except REDIS_FAILURE:
            acquired = None
        # Taking the lock or seeing it gone races a leader that just stored the entry and
        # let go: read the entry once more before fetching, or two processes fetch.
        entry = await self._fresh_entry(key) if acquired else None
        if not acquired:
            entry = await self._wait_for_other_process(key, lock)
            if entry is not None:
                self._metrics.singleflight_waits.labels("served").inc()
        try:
            if entry is not None:
                self._metrics.cache_requests.labels("hit").inc()
                return self._from_entry(entry, "HIT", time.time()), entry
            return await self._fetch_entry(key, fetch, ttl)
        finally:
            if acquired:
                # On failure the lock simply expires after SINGLEFLIGHT_LOCK_S.
                with contextlib.suppress(RedisError, OSError):
                    await self._release(keys=[lock], args=[token])

    async def _wait_for_other_process(self, key: str, lock: str) -> Entry | None:
        deadline = time.monotonic() + self._wait_s
        delay = 0.002
        while time.monotonic() < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
            try:
                entry = await self._read(key)
                if entry is not None and entry.fresh(time.time()):
                    return entry
                async with asyncio.timeout(self._timeout):
                    if not await self._redis.exists(lock):
                        # The leader is done: it stored the entry after our read above,
                        # or nothing we can use (then fetch ourselves).
                        return await self._fresh_entry(key)
            except _UNREADABLE:
                return None
        self._metrics.singleflight_waits.labels("timeout").inc()
        return None

    async def _fresh_entry(self, key: str) -> Entry | None:
        """The stored entry of `key` if it is fresh; None when absent, stale or unreadable."""
        try:
            entry = await self._read(key)
        except _UNREADABLE:
            return None
        return entry if entry is not None and entry.fresh(time.time()) else None

    async def _fetch_and_store(self, key: str, fetch: Fetch, ttl: int) -> Served:
        served, _ = await self._fetch_entry(key, fetch, ttl)
        return served

    async def _fetch_entry(self, key: str, fetch: Fetch, ttl: int) -> tuple[Served, Entry | None]:
        response = await fetch()
        max_age = freshness(response, ttl)
        if max_age <= 0 or len(response.body) > self._max_body:
            return self._bypass(response, ttl), None
        now = time.time()
        entry = Entry(
            response.status,
            response.body,
            response.content_type,
            response.etag or strong_etag(response.body),
            now,
            max_age,
        )
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.set(
                    self._key(key), entry.dumps(), px=(max_age + self._stale_s) * 1000
                )
        except REDIS_FAILURE:
            log.warning("cache_store_failed", key=key)
        self._metrics.cache_requests.labels("miss").inc()
        return self._from_entry(entry, "MISS", now), entry

    def _from_entry(self, entry: Entry, x_cache: str, now: float) -> Served:
        left = 0 if x_cache == "STALE" else max(0, entry.max_age - entry.age(now))
        return Served(
            status=entry.status,
            body=entry.body,
            content_type=entry.content_type,
            etag=entry.etag,
            x_cache=x_cache,
            age=entry.age(now),
            cache_control=f"private, max-age={left}",
        )

    def _bypass(self, response: OriginResponse, ttl: int) -> Served:
        self._metrics.cache_requests.labels("bypass").inc()
        return Served(
            status=response.status,
            body=response.body,
            content_type=response.content_type,
            etag=response.etag or strong_etag(response.body),
            x_cache="BYPASS",
            age=0,
            cache_control=response.cache_control or "no-store",
        )

    async def purge(self, pattern: str = "*", *, actor: Actor) -> int:
        """Delete cached responses whose key (`GET:/path?query#tier`) matches a glob."""
        match = self._key("GET:" + pattern.removeprefix("GET:"))
        deleted = 0
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=match, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(await self._redis.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(await self._redis.unlink(*batch))
        await AuditLog(self._resources.sessionmaker).record_alone(
            actor, Action.CACHE_PURGE, f"cache:{pattern}", after={"purged": deleted}
        )
        return deleted
