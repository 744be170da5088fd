"""Security headers on every response of the public port.

Sets `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
`X-Frame-Options: DENY` and a restrictive `Content-Security-Policy` for JSON (the docs
pages keep theirs off so Swagger UI still loads), and removes any `Server` header so no
version leaks. It also appends headers that inner layers left in
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
_DOCS = ("/docs", "/redoc", "/openapi.json")


class SecurityHeaders:
    """Adds security headers and the limiter's headers; strips `Server`."""

    def __call__(
        self, scope: Scope, headers: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        # ASGI requires lowercase header names, and every layer here sends them so.
        present = {name for name, _ in headers}
        if b"server" in present:
            headers = [(k, v) for k, v in headers if k != b"server"]
        headers.extend(h for h in _ALWAYS if h[0] not in present)
        if _CSP[0] not in present and not scope["path"].startswith(_DOCS):
            headers.append(_CSP)
        state = scope.get("state")
        extra: dict[str, str] | None = state.get(RESPONSE_HEADERS_STATE) if state else None
        if extra:
            for name, value in extra.items():
                encoded = name.lower().encode("latin-1")
                if encoded not in present:
                    headers.append((encoded, value.encode("latin-1")))
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
