"""The gateway's error tree.

Services raise these; one handler set (`gateway.api.problems`) renders every one of them
as an RFC 9457 problem document on every port, so clients see one error shape::

    GatewayError (500)
    ├── BadRequest (400)
    │   └── InvalidInput (422)            field errors in `errors`
    ├── Unauthorized (401)                `reason` code in the body
    ├── BudgetExceeded (402)              what remains, when it resets
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── Conflict (409)
    ├── Gone (410)
    ├── PayloadTooLarge (413)
    ├── UnsupportedMediaType (415)
    ├── TooManyRequests (429)             `Retry-After`
    └── ServiceUnavailable (503)          `Retry-After`, `dependency`
        └── DependencyUnavailable (503)   Redis/PostgreSQL/upstream down

Services never import FastAPI; these exceptions carry everything a handler needs.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://gateway.taxlien.dev/problems/"


class GatewayError(Exception):
    """Base of every error the gateway answers on purpose."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}

    @property
    def type_uri(self) -> str:
        """The problem `type` URI, stable per error class."""
        return PROBLEM_BASE + self.slug


class BadRequest(GatewayError):
    """The request is malformed."""

    status = 400
    slug = "bad-request"
    title = "Bad request"


class InvalidInput(BadRequest):
    """The request parsed but its fields failed validation."""

    status = 422
    slug = "validation-error"
    title = "Request validation failed"

    def __init__(self, errors: list[dict[str, Any]], detail: str | None = None) -> None:
        super().__init__(detail or "One or more fields are invalid", extra={"errors": errors})


class Unauthorized(GatewayError):
    """Credentials are missing or invalid."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str | None = None, *, reason: str = "invalid_credentials") -> None:
        super().__init__(detail, extra={"reason": reason})


class Forbidden(GatewayError):
    """The caller is known but may not do this."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class BudgetExceeded(GatewayError):
    """The caller's credits do not cover what it asked for (`remaining`, `resets_at`)."""

    status = 402
    slug = "budget-exceeded"
    title = "Budget exceeded"


class NotFound(GatewayError):
    """No such resource."""

    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(GatewayError):
    """The request conflicts with the current state."""

    status = 409
    slug = "conflict"
    title = "Conflict"


class Gone(GatewayError):
    """The resource existed but no longer does (an expired or revoked link)."""

    status = 410
    slug = "gone"
    title = "Gone"


class PayloadTooLarge(GatewayError):
    """The request body exceeds the configured limit."""

    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(GatewayError):
    """The body's declared or sniffed content type is not one this endpoint accepts."""

    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class TooManyRequests(GatewayError):
    """A rate limit or quota was exceeded."""

    status = 429
    slug = "rate-limited"
    title = "Too many requests"


class ServiceUnavailable(GatewayError):
    """The gateway cannot serve this right now; try again later."""

    status = 503
    slug = "service-unavailable"
    title = "Service unavailable"


class DependencyUnavailable(ServiceUnavailable):
    """A backend (Redis, PostgreSQL, an upstream) is down or timed out."""

    slug = "dependency-unavailable"
    title = "Dependency unavailable"

    def __init__(self, dependency: str, detail: str | None = None, retry_after: int = 1) -> None:
        super().__init__(
            detail or f"{dependency} is unavailable",
            headers={"Retry-After": str(retry_after)},
            extra={"dependency": dependency},
        )
