"""Errors of the client.

```
Exception
 └── ClientError                   anything this package raises on purpose
      ├── GatewayError             the gateway answered with an error (RFC 9457 problem)
      │    ├── BadRequest          400
      │    ├── Unauthorized        401 (`reason` says why)
      │    ├── Forbidden           403
      │    ├── NotFound            404 (also another caller's job, endpoint or watch)
      │    ├── Conflict            409
      │    ├── PaymentRequired     402 (job credits exhausted)
      │    ├── ValidationFailed    422 (`errors` names the fields)
      │    ├── RateLimited         429 (`retry_after`, `rate_limit`)
      │    └── ServiceUnavailable  503 (`retry_after`, `dependency`)
      ├── StreamInterrupted        an event stream could not be resumed within its bound
      └── WebhookVerificationError a webhook request whose signature or time does not hold
```

Connection failures that outlive the retries are httpx's own `httpx.TransportError`s:
wrapping them would hide which one it was.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from taxlien_gateway.ratelimit import RateLimit, parse_rate_limit, parse_retry_after

_PROBLEM_FIELDS = ("type", "title", "status", "detail", "instance", "request_id")


class ClientError(Exception):
    """Base of every error this package raises on purpose."""


class GatewayError(ClientError):
    """An error answer of the gateway, with the fields of its problem document.

    `type`, `title`, `status`, `detail`, `instance` are RFC 9457's; `request_id` names
    the request in the gateway's logs; `extra` holds the problem's other members
    (`errors`, `reason`, `limit`, `dependency`, ...). `retry_after` (seconds) and
    `rate_limit` come from the response headers.
    """

    def __init__(
        self,
        *,
        status: int,
        type: str = "about:blank",  # RFC 9457's member name
        title: str = "",
        detail: str = "",
        instance: str | None = None,
        request_id: str | None = None,
        extra: dict[str, Any] | None = None,
        retry_after: float | None = None,
        rate_limit: RateLimit | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.instance = instance
        self.request_id = request_id
        self.extra: dict[str, Any] = extra or {}
        self.retry_after = retry_after
        self.rate_limit = rate_limit
        self.response = response
        super().__init__(f"{status} {title or 'error'}: {detail}" if detail else f"{status}")

    @property
    def slug(self) -> str:
        """The last segment of `type` (`rate-limited`, `not-found`, ...)."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The offending fields of a validation problem (`loc`, `msg`, `type`)."""
        found = self.extra.get("errors")
        return found if isinstance(found, list) else []

    @property
    def reason(self) -> str | None:
        """The machine-readable reason of a 401 (`invalid_api_key`, ...), if any."""
        found = self.extra.get("reason")
        return found if isinstance(found, str) else None

    @classmethod
    def from_response(cls, response: httpx.Response) -> GatewayError:
        """The error an answer stands for (a subclass by status); a body that is not a
        problem document still gives one, from the status line."""
        doc: dict[str, Any] = {}
        try:
            parsed = json.loads(response.content) if response.content else {}
            if isinstance(parsed, dict):
                doc = parsed
        except ValueError:
            pass
        kind = _BY_STATUS.get(response.status_code, GatewayError)
        status = doc.get("status")
        return kind(
            status=status if isinstance(status, int) else response.status_code,
            type=str(doc.get("type") or "about:blank"),
            title=str(doc.get("title") or response.reason_phrase or ""),
            detail=str(doc.get("detail") or ""),
            instance=doc.get("instance"),
            request_id=doc.get("request_id") or response.headers.get("x-request-id"),
            extra={k: v for k, v in doc.items() if k not in _PROBLEM_FIELDS},
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            rate_limit=parse_rate_limit(response.headers),
            response=response,
        )


class BadRequest(GatewayError):
    """400: a malformed request (a bad `Idempotency-Key`, credentials in a query)."""


class Unauthorized(GatewayError):
    """401: missing, unknown or expired credentials (`reason` says which)."""


class PaymentRequired(GatewayError):
    """402: the job needs more credits than remain in the period."""


class Forbidden(GatewayError):
    """403: the caller may not do this (an anonymous caller, a tier without it)."""


class NotFound(GatewayError):
    """404: no such thing, or one of another caller's."""


class Conflict(GatewayError):
    """409: the thing's state forbids it (cancelling a finished job, ...)."""


class ValidationFailed(GatewayError):
    """422: the request's fields were refused (`errors` lists them)."""


class RateLimited(GatewayError):
    """429: a rate limit, quota or cap was hit (`retry_after` says when to try again)."""


class ServiceUnavailable(GatewayError):
    """503: a dependency of the gateway is down (`retry_after`)."""


_BY_STATUS: dict[int, type[GatewayError]] = {
    400: BadRequest,
    401: Unauthorized,
    402: PaymentRequired,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


class StreamInterrupted(ClientError):
    """An event stream broke and could not be resumed within the reconnect bound.

    `last_event_id` is where a later `follow(..., last_event_id=...)` resumes.
    """

    def __init__(self, message: str, *, last_event_id: str | None) -> None:
        super().__init__(message)
        self.last_event_id = last_event_id


class WebhookVerificationError(ClientError):
    """A webhook request that must not be trusted: bad signature, headers or time."""
