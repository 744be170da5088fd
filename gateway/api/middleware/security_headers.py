"""Security headers on every response of every port.

Sets `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
`X-Frame-Options: DENY` and a restrictive `Content-Security-Policy` for JSON (the docs
pages keep theirs off so Swagger UI still loads), and removes any `Server` header so no
version leaks. It also appends the raw headers that inner layers left in
`scope["state"]["response_headers"]`: the rate limiter decides before the route runs
and its `RateLimit` headers must reach every response that consumed budget, including
problem responses raised later (422, 404, 503).

`SecurityHeaders` is applied by the request-context middleware to every response it
sends on (see `gateway.apps.builder`), so even a 500 or a CORS preflight carries them.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

RESPONSE_HEADERS_STATE = "response_headers"

_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-site"),
)
_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_ALWAYS_AND_CSP = (*_ALWAYS, _CSP)
_DOCS = ("/docs", "/redoc", "/openapi.json")
# Names a response may already carry that this policy sets, replaces or removes.
_MANAGED = frozenset(
    {name for name, _ in _ALWAYS_AND_CSP} | {b"server", b"ratelimit", b"ratelimit-policy"}
)


class SecurityHeaders:
    """Adds security headers and the limiter's headers; strips `Server`."""

    def __call__(
        self, scope: Scope, headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        state = scope.get("state")
        extra: list[tuple[bytes, bytes]] | None = (
            state.get(RESPONSE_HEADERS_STATE) if state else None
        )
        # ASGI requires lowercase header names, and every layer here sends them so.
        if not any(name in _MANAGED for name, _ in headers):
            # The common case (every cache hit): nothing to replace or keep.
            headers += _ALWAYS_AND_CSP if not scope["path"].startswith(_DOCS) else _ALWAYS
            if extra:
                headers += extra
            return headers
        present = {name for name, _ in headers}
        if b"server" in present:
            headers = [(k, v) for k, v in headers if k != b"server"]
        headers.extend(h for h in _ALWAYS if h[0] not in present)
        if _CSP[0] not in present and not scope["path"].startswith(_DOCS):
            headers.append(_CSP)
        if extra:
            headers.extend(h for h in extra if h[0] not in present)
        return headers


class CrossOriginOnlyCORS:
    """Starlette's `CORSMiddleware`, entered only by requests that carry `Origin`.

    `CORSMiddleware` builds a `Headers` object for every request; servers, scripts and
    probes never send `Origin`, so they skip it. Requests without `Origin` get no CORS
    headers from it anyway.
    """

    def __init__(self, app: ASGIApp, /, **cors_options: Any) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, **cors_options)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function returning the next layer's coroutine: no frame of its own on
        # every request (callers only await what an ASGI app returns).
        if scope["type"] == "http":
            for name, _ in scope["headers"]:
                if name == b"origin":
                    return self.cors(scope, receive, send)
        return self.app(scope, receive, send)
