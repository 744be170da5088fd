"""When to send a request again, and after how long (shared by both clients).

Retried, at most `max_retries` times per logical call:

- 429 and 503 answers, after the `Retry-After` the gateway sent, else after the reset
  time of the exhausted `RateLimit` policy, else an exponential backoff with jitter;
- 409 `idempotency-key-in-use` (the first attempt of this very call is still running);
- connection failures: a connect error for every method (nothing reached the server),
  other transport errors (a timeout, a dropped answer) for GET and for POST and PATCH,
  which are safe to repeat: every POST carries the call's `Idempotency-Key`, so the
  gateway replays the first answer instead of acting twice, and a PATCH sets fields.
  A DELETE is not repeated after its request went out: the repeat would answer 404.

A wait longer than `max_wait_s` is not waited for: a `quota-exceeded` 429 says "after
midnight UTC", which no caller wants to block on; the error is raised at once with its
`retry_after` for the caller to decide.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from taxlien_gateway.ratelimit import parse_rate_limit, parse_retry_after

IDEMPOTENCY_IN_USE = "idempotency-key-in-use"


@dataclass(frozen=True)
class Retry:
    """One retry about to happen (given to `on_retry`, e.g. for logs or metrics)."""

    method: str
    url: str
    attempt: int  # the attempt that failed, from 1
    delay_s: float
    status: int | None = None
    error: Exception | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retries: how many, how long a server-requested wait may be, and the
    backoff when the server said nothing (`backoff_s * 2**n`, capped, full jitter)."""

    max_retries: int = 3
    max_wait_s: float = 30.0
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    statuses: frozenset[int] = frozenset({429, 503})
    jitter: Callable[[float], float] = field(default=lambda high: random.uniform(0, high))  # noqa: S311 - jitter, not security

    def _backoff(self, attempt: int) -> float:
        return self.jitter(min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1)))

    def delay_after_response(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying after this answer (None: do not retry)."""
        if attempt > self.max_retries:
            return None
        status = response.status_code
        if status == 409:
            if IDEMPOTENCY_IN_USE not in response.text:
                return None
        elif status not in self.statuses:
            return None
        delay = parse_retry_after(response.headers.get("retry-after"))
        if delay is None:
            rate_limit = parse_rate_limit(response.headers)
            delay = rate_limit.wait_s() if rate_limit is not None else None
        if delay is None:
            delay = self._backoff(attempt)
        return delay if delay <= self.max_wait_s else None

    def delay_after_error(self, attempt: int, method: str, error: Exception) -> float | None:
        """Seconds to wait before retrying after a transport error (None: do not retry)."""
        if attempt > self.max_retries or not isinstance(error, httpx.TransportError):
            return None
        sent = not isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
        if sent and method.upper() not in ("GET", "HEAD", "POST", "PATCH"):
            return None
        if isinstance(
            error, httpx.UnsupportedProtocol | httpx.ProxyError | httpx.LocalProtocolError
        ):
            return None  # repeating cannot help: the request itself is the problem
        return self._backoff(attempt)


NO_RETRIES = RetryPolicy(max_retries=0)
