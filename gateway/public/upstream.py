"""One circuit breaker (pybreaker) and one retry budget per upstream.

pybreaker's `calling()` context manager records the outcome of whatever runs inside it,
including an `await`, and takes no lock across the await. Only `UpstreamFailure`
(connect error, timeout, 5xx) counts against the breaker; a 404 is an answer. When
open, calls fail in microseconds with 503 + `Retry-After` (the time left until the
breaker half-opens) without touching the upstream. pybreaker would let every request
through while half-open; we let exactly one probe through and fail the others fast
until the probe settles the state.

Idempotent GETs are retried once on a connect error (nothing reached the upstream), but
only while the retry budget allows: `RETRY_BUDGET_RATIO` retries per request plus
`RETRY_BUDGET_MIN_PER_S`, so retries cannot multiply load on a struggling upstream.
"""

from __future__ import annotations

import math
import time

import pybreaker
import structlog

from gateway.core.errors import DependencyUnavailable
from gateway.core.settings import Settings
from gateway.public.metrics import PublicMetrics
from gateway.public.origin import Origin, OriginRequest, OriginResponse, UpstreamFailure

log = structlog.get_logger("gateway.public.upstream")

_STATE_VALUES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}


class RetryBudget:
    """Allows retries in proportion to requests, plus a small floor per second."""

    def __init__(self, ratio: float, min_per_s: float, cap: float = 10.0) -> None:
        self._ratio = ratio
        self._min_per_s = min_per_s
        self._cap = cap
        self._tokens = cap
        self._at = time.monotonic()

    def record_request(self) -> None:
        """Every request earns a fraction of a retry."""
        self._tokens = min(self._cap, self._tokens + self._ratio)

    def try_spend(self) -> bool:
        """Take one retry if the budget has it."""
        now = time.monotonic()
        self._tokens = min(self._cap, self._tokens + (now - self._at) * self._min_per_s)
        self._at = now
        if self._tokens >= 1 - 1e-9:  # ten requests at ratio 0.1 earn one whole retry
            self._tokens = max(0.0, self._tokens - 1)
            return True
        return False


class _StateGauge(pybreaker.CircuitBreakerListener):
    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream

    def state_change(self, cb: pybreaker.CircuitBreaker, old: object, new: object) -> None:
        name = getattr(new, "name", str(new))
        self._upstream.on_state(name)


class UpstreamOpen(DependencyUnavailable):
    """503: the upstream's circuit breaker is open."""

    slug = "upstream-unavailable"
    title = "Upstream unavailable"


class Upstream:
    """An origin behind a circuit breaker, a retry budget and metrics."""

    def __init__(self, origin: Origin, settings: Settings, metrics: PublicMetrics) -> None:
        self.origin = origin
        self.name = origin.name
        self._metrics = metrics
        self._reset_s = settings.breaker_reset_timeout_s
        self._opened_at = 0.0
        self._probing = False
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=settings.breaker_fail_max,
            reset_timeout=settings.breaker_reset_timeout_s,
            exclude=[lambda exc: not isinstance(exc, UpstreamFailure)],
            listeners=[_StateGauge(self)],
            name=origin.name,
        )
        self.budget = RetryBudget(settings.retry_budget_ratio, settings.retry_budget_min_per_s)
        metrics.breaker_state.labels(self.name).set(0)

    def on_state(self, state: str) -> None:
        """Breaker listener: export the state and remember when it opened."""
        self._metrics.breaker_state.labels(self.name).set(_STATE_VALUES.get(state, 0))
        if state == pybreaker.STATE_OPEN:
            self._opened_at = time.monotonic()
        log.warning("circuit_breaker_state", upstream=self.name, state=state)

    def _open_error(self) -> UpstreamOpen:
        left = self._opened_at + self._reset_s - time.monotonic()
        error = UpstreamOpen(self.name, f"{self.name} upstream is unavailable (circuit open)")
        error.headers["Retry-After"] = str(max(1, math.ceil(left)))
        return error

    async def fetch(self, request: OriginRequest) -> OriginResponse:
        """Call the origin through the breaker; 503 when open or failing."""
        self.budget.record_request()
        probe = self.breaker.current_state != pybreaker.STATE_CLOSED
        if probe and self._probing:
            raise self._open_error()
        if probe:
            self._probing = True
        try:
            with self.breaker.calling():
                return await self._attempts(request)
        except pybreaker.CircuitBreakerError:
            raise self._open_error() from None
        except UpstreamFailure as exc:
            raise DependencyUnavailable(
                self.name, f"{self.name} upstream failed ({exc.status})"
            ) from exc
        finally:
            if probe:
                self._probing = False

    async def _attempts(self, request: OriginRequest) -> OriginResponse:
        try:
            return await self._timed(request)
        except UpstreamFailure as exc:
            if not exc.connect or not self.budget.try_spend():
                raise
        return await self._timed(request)

    async def _timed(self, request: OriginRequest) -> OriginResponse:
        started = time.perf_counter()
        status = "error"
        try:
            response = await self.origin.fetch(request)
            status = str(response.status)
            return response
        except UpstreamFailure as exc:
            status = exc.status
            raise
        finally:
            self._metrics.upstream_requests.labels(self.name, status).inc()
            self._metrics.upstream_duration.labels(self.name).observe(time.perf_counter() - started)
