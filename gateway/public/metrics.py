"""Public-plane metric families, registered once in the public audience's registry.

The `audience` label is added at exposition (see `gateway.core.observability.metrics`). All
label values are bounded: reasons, tiers, kinds, cache results and upstream names come
from closed sets (tier names come from configuration).

Every label value known up front is exported at 0 from the start (a counter child never
incremented is not exported, and a quiet system's panels would say "No data"): the
closed sets below in `__init__`, the configured tiers and the upstream's name when the
plane is built (`declare`). Upstream statuses are open (any HTTP code), so only the
failure classes the origins raise are declared.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.kit.memo import PerOwner

# Every `reason` an auth failure is counted under (tests/public/test_metrics.py checks the
# sources raise no other).
AUTH_FAILURE_REASONS = (
    "missing_credentials",
    "ambiguous_credentials",
    "too_many_failures",
    "invalid_credentials",
    "unsupported_scheme",
    "firebase_disabled",
    "malformed_api_key",
    "invalid_api_key",
    "api_key_revoked",
    "malformed_token",
    "invalid_token",
    "token_expired",
    "token_revoked",
    "wrong_project",
    "unknown_key",
    "bad_signature",
    "custom_token",
    "user_disabled",
    "user_not_found",
    # OIDC and HS256 issuers (gateway/public/tokens/)
    "unknown_issuer",
    "alg_not_allowed",
    "wrong_audience",
    "wrong_issuer",
    "token_not_yet_valid",
    "missing_claim",
)
CACHE_RESULTS = ("hit", "miss", "stale", "bypass")
SINGLEFLIGHT_OUTCOMES = ("served", "timeout")
RATE_LIMIT_KINDS = ("rate", "quota")
# Requests carrying Idempotency-Key, counted once each: `new` ran and its answer was
# stored, `not_stored` ran and its answer was not kept (5xx, too large, lost connection).
IDEMPOTENCY_OUTCOMES = ("new", "replayed", "in_flight", "mismatch", "not_stored")
# The statuses of `gateway_upstream_requests_total` that are not HTTP codes.
UPSTREAM_FAILURE_STATUSES = ("connect_error", "timeout", "error")

_UPSTREAM_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class PublicMetrics:
    """The public plane's counters, gauges and histograms."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.auth_failures = Counter(
            "gateway_auth_failures_total",
            "Failed authentication attempts on the public port, by reason code.",
            ["reason"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "gateway_rate_limited_total",
            "Requests refused with 429, by tier and kind (rate or quota).",
            ["tier", "kind"],
            registry=registry,
        )
        self.cache_requests = Counter(
            "gateway_cache_requests_total",
            "Cacheable requests by cache result (hit, miss, stale, bypass).",
            ["result"],
            registry=registry,
        )
        self.singleflight_waits = Counter(
            "gateway_singleflight_waits_total",
            "Requests that waited for another request's upstream fetch, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.upstream_requests = Counter(
            "gateway_upstream_requests_total",
            "Requests sent to an upstream, by upstream and status (code or error class).",
            ["upstream", "status"],
            registry=registry,
        )
        self.upstream_duration = Histogram(
            "gateway_upstream_request_duration_seconds",
            "Upstream request duration.",
            ["upstream"],
            buckets=_UPSTREAM_BUCKETS,
            registry=registry,
        )
        self.breaker_state = Gauge(
            "gateway_circuit_breaker_state",
            "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open.",
            ["upstream"],
            registry=registry,
        )
        self.limiter_batches = Counter(
            "gateway_limiter_batches_total",
            "Batches of rate-limit checks sent to Redis (one script call, one round trip each).",
            registry=registry,
        )
        self.limiter_calls = Counter(
            "gateway_limiter_calls_total",
            "Rate-limit checks sent to Redis; divided by batches: the mean batch size.",
            registry=registry,
        )
        self.limiter_fallbacks = Counter(
            "gateway_limiter_fallbacks_total",
            "Rate-limit decisions taken by the per-process fallback limiter (Redis down).",
            registry=registry,
        )
        self.idempotency_requests = Counter(
            "gateway_idempotency_requests_total",
            "POSTs carrying Idempotency-Key, by outcome (new, replayed, in_flight, mismatch,"
            " not_stored).",
            ["outcome"],
            registry=registry,
        )
        for outcome in IDEMPOTENCY_OUTCOMES:
            self.idempotency_requests.labels(outcome)
        for reason in AUTH_FAILURE_REASONS:
            self.auth_failures.labels(reason)
        for result in CACHE_RESULTS:
            self.cache_requests.labels(result)
        for outcome in SINGLEFLIGHT_OUTCOMES:
            self.singleflight_waits.labels(outcome)

    def declare(self, *, tiers: Iterable[str], upstream: str) -> None:
        """Export the series of the configured tiers and the upstream at 0."""
        for tier in tiers:
            for kind in RATE_LIMIT_KINDS:
                self.rate_limited.labels(tier, kind)
        for status in UPSTREAM_FAILURE_STATUSES:
            self.upstream_requests.labels(upstream, status)
        self.upstream_duration.labels(upstream)


# Apps may be rebuilt over one registry (tests); a registry refuses duplicate collectors.
public_metrics: PerOwner[CollectorRegistry, PublicMetrics] = PerOwner(PublicMetrics)
