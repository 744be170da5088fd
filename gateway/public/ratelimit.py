"""Exact per-principal rate limits and daily quotas, with a per-process fallback.

Kong, APISIX and Tyk are exact in Redis only in a slow synchronous mode. Here every
request runs one Lua script (`ratelimit.lua`) that refills the principal's token bucket
from the Redis clock, checks the daily quota, and takes a token and a quota unit
together, atomically: 200 concurrent requests against a budget of 50 admit exactly 50,
however many gateway processes share the Redis. Denied requests consume nothing. The
checks made in one event-loop turn travel in one script call (`script_batch.py`): they
run one after the other inside it, exactly as separate calls would; the batch only saves
round trips.

When Redis is unreachable (or slower than `RATELIMIT_REDIS_TIMEOUT_S`) the decision is
taken by an in-process bucket with the same parameters: limits stay roughly right per
process instead of the gateway answering 500 or letting everything through. Each such
decision is counted in `gateway_limiter_fallbacks_total` and logged (throttled).
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway.core.errors import TooManyRequests
from gateway.core.resources import Resources
from gateway.core.settings.tiers import Tier
from gateway.fastpath.redis_batch import ScriptBatcher, SingleCalls
from gateway.kit.lua import lua_source
from gateway.kit.outage import REDIS_FAILURE
from gateway.public.metrics import PublicMetrics

log = structlog.get_logger("gateway.public.ratelimit")

_SCRIPT = lua_source("gateway.public", "ratelimit")
# A principal's limit state in Redis, as ratelimit.lua packs it: tokens, last refill
# (Redis clock, s), day number, requests counted that day.
STATE_FORMAT = struct.Struct("<dddd")
_FALLBACK_LOG_EVERY_S = 10.0


@dataclass(slots=True)
class Decision:
    """The outcome of one limiter check, with what the headers need.

    Not frozen: a frozen dataclass sets each field through `object.__setattr__`, which
    costs microseconds on every request. Treat it as read-only all the same.
    """

    allowed: bool
    kind: str | None
    tier: Tier
    tokens: float
    quota_used: int
    retry_after_s: float
    day_reset_s: float
    fallback: bool = False
    window_s: int = 86_400
    # The response-cache entry read in the same round trip (None: absent or not asked).
    prefetched: bytes | None = field(default=None, repr=False)
    prefetch_done: bool = False

    def limit_headers(self) -> list[tuple[bytes, bytes]]:
        """IETF draft `RateLimit-Policy` and `RateLimit`, as raw ASGI headers (every
        admitted response carries them, so they are built ready to send)."""
        tier = self.tier
        tokens = self.tokens
        bucket_reset = math.ceil(max(0.0, tier.burst - tokens) / tier.rate_per_s)
        if tier.daily_quota:
            remaining = max(0, tier.daily_quota - self.quota_used)
            state = (
                f'"burst";r={math.floor(tokens)};t={bucket_reset}, '
                f'"daily";r={remaining};t={math.ceil(self.day_reset_s)}'
            )
        else:
            state = f'"burst";r={math.floor(tokens)};t={bucket_reset}'
        return [(b"ratelimit-policy", _policy(tier, self.window_s)), (b"ratelimit", state.encode())]

    def headers(self) -> dict[str, str]:
        """`limit_headers`, plus `Retry-After` when denied, for a problem response."""
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in self.limit_headers()
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return headers

    def error(self) -> TooManyRequests:
        """The 429 problem for a denied decision; its type says rate or quota."""
        if self.kind == "quota":
            return QuotaExceeded(
                f"Daily quota of {self.tier.daily_quota} requests exhausted",
                headers=self.headers(),
                extra={"tier": self.tier.name, "limit": "quota"},
            )
        return RateLimitExceeded(
            f"Rate limit of {self.tier.rate_per_s:g} requests/s (burst {self.tier.burst}) exceeded",
            headers=self.headers(),
            extra={"tier": self.tier.name, "limit": "rate"},
        )


_POLICIES: dict[tuple[str, float, int, int, int], bytes] = {}


def _policy(tier: Tier, window_s: int) -> bytes:
    """`RateLimit-Policy` of a tier: the same value for every request, built once."""
    key = (tier.name, tier.rate_per_s, tier.burst, tier.daily_quota, window_s)
    cached = _POLICIES.get(key)
    if cached is not None:
        return cached
    policy = f'"burst";q={tier.burst};w={tier.bucket_window_s}'
    if tier.daily_quota:
        policy += f', "daily";q={tier.daily_quota};w={window_s}'
    encoded = policy.encode()
    if len(_POLICIES) < 1024:  # tiers are configuration: a handful of keys
        _POLICIES[key] = encoded
    return encoded


class RateLimitExceeded(TooManyRequests):
    """429: the token bucket is empty; retry in seconds."""

    slug = "rate-limited"
    title = "Rate limit exceeded"


class QuotaExceeded(TooManyRequests):
    """429: the daily quota is used up; retry after the next UTC midnight."""

    slug = "quota-exceeded"
    title = "Daily quota exceeded"


class _LocalBucket:
    __slots__ = ("day", "tokens", "ts", "used")

    def __init__(self, burst: int, now: float, window: int) -> None:
        self.tokens = float(burst)
        self.ts = now
        self.day = int(now // window)
        self.used = 0


class FallbackLimiter:
    """The same token bucket and quota, in this process's memory."""

    def __init__(self, window_s: int = 86_400, max_entries: int = 100_000) -> None:
        self._window = window_s
        self._buckets: dict[str, _LocalBucket] = {}
        self._max_entries = max_entries

    def check(self, key: str, tier: Tier, cost: int = 1) -> Decision:
        """Take `cost` from the local bucket when possible."""
        now = time.time()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_entries:
                self._buckets.clear()  # crude bound: an outage must not grow memory forever
            bucket = self._buckets[key] = _LocalBucket(tier.burst, now, self._window)
        day = int(now // self._window)
        if day != bucket.day:
            bucket.day, bucket.used = day, 0
        bucket.tokens = min(tier.burst, bucket.tokens + max(0.0, now - bucket.ts) * tier.rate_per_s)
        bucket.ts = now
        day_reset = (day + 1) * self._window - now
        kind: str | None = None
        retry = 0.0
        if tier.daily_quota and bucket.used + cost > tier.daily_quota:
            kind, retry = "quota", day_reset
        elif bucket.tokens < cost:
            kind, retry = "rate", (cost - bucket.tokens) / tier.rate_per_s
        else:
            bucket.tokens -= cost
            bucket.used += cost
        return Decision(
            kind is None,
            kind,
            tier,
            bucket.tokens,
            bucket.used,
            retry,
            day_reset,
            fallback=True,
            window_s=self._window,
        )


def _share_cached_bodies(replies: list[Any]) -> None:
    """Replace the script's references to an earlier check's cached response (its
    number, 1-based) by that response: each call sends a cached response once."""
    for reply in replies:
        if isinstance(reply, list) and isinstance(reply[6], int):
            reply[6] = replies[reply[6] - 1][6]


class RateLimiter:
    """Checks and consumes a principal's budget on every request."""

    def __init__(self, resources: Resources, metrics: PublicMetrics) -> None:
        self._resources = resources
        self._metrics = metrics
        self._timeout = resources.settings.ratelimit_redis_timeout_s
        self._script: ScriptBatcher | SingleCalls
        if resources.settings.fastpath:
            self._script = ScriptBatcher(
                resources.redis,
                _SCRIPT,
                keys_per_call=2,
                args_per_call=5,
                timeout_s=self._timeout,
                on_batch=self._count_batch,
                on_replies=_share_cached_bodies,
            )
        else:
            self._script = SingleCalls(
                resources.redis,
                _SCRIPT,
                timeout_s=self._timeout,
                on_batch=self._count_batch,
                on_replies=_share_cached_bodies,
            )
        self._window = resources.settings.quota_window_s
        self.fallback = FallbackLimiter(self._window)
        self._last_fallback_log = 0.0

    def _count_batch(self, calls: int) -> None:
        self._metrics.limiter_batches.inc()
        self._metrics.limiter_calls.inc(calls)

    def _state_key(self, limit_key: str) -> str:
        return self._resources.key("rl", limit_key)

    async def check(
        self, limit_key: str, tier: Tier, cost: int = 1, *, prefetch: str | None = None
    ) -> Decision:
        """Consume one request of `limit_key`'s budget, or say why not.

        With `prefetch` (a full Redis key), an admitted request also reads that key in the
        same script, saving the response cache its own round trip.
        """
        keys = (self._state_key(limit_key), prefetch or "")  # '': no cache entry to read
        try:  # bounded by the batch's deadline (RATELIMIT_REDIS_TIMEOUT_S)
            raw = await self._script.submit(
                keys, (tier.rate_per_s, tier.burst, tier.daily_quota, cost, self._window)
            )
        except REDIS_FAILURE as exc:
            return self._fallback(limit_key, tier, cost, exc)
        # Integers from the script (see ratelimit.lua); hiredis hands them over as ints.
        allowed, kind, micro_tokens, used, retry_ms, day_reset_ms, cached = raw
        return Decision(
            allowed=allowed == 1,
            kind=kind.decode() if kind else None,
            tier=tier,
            tokens=micro_tokens / 1_000_000,
            quota_used=used,
            retry_after_s=retry_ms / 1000,
            day_reset_s=day_reset_ms / 1000,
            window_s=self._window,
            prefetched=cached or None,
            prefetch_done=prefetch is not None and allowed == 1,
        )

    def _fallback(self, key: str, tier: Tier, cost: int, exc: BaseException) -> Decision:
        self._metrics.limiter_fallbacks.inc()
        now = time.monotonic()
        if now - self._last_fallback_log >= _FALLBACK_LOG_EVERY_S:
            self._last_fallback_log = now
            log.warning(
                "ratelimit_fallback",
                detail="Redis unreachable: limiting per process until it is back",
                error=type(exc).__name__,
            )
        return self.fallback.check(key, tier, cost)

    async def usage_today(self, limit_key: str) -> int:
        """Requests counted against the principal's quota today (0 if Redis is down)."""
        redis = self._resources.redis
        try:
            async with asyncio.timeout(self._timeout):
                seconds, _micros = await redis.time()
                raw = await redis.get(self._state_key(limit_key))
        except REDIS_FAILURE:
            return 0
        if not isinstance(raw, bytes) or len(raw) != STATE_FORMAT.size:
            return 0
        _tokens, _refilled, day, used = STATE_FORMAT.unpack(raw)
        return int(used) if int(day) == int(seconds) // self._window else 0
