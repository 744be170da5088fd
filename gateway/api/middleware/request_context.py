"""Request id, body limit, access log, HTTP metrics and the last-resort 500, as pure ASGI.

`BaseHTTPMiddleware` would run the app in another task (breaking context variables) and
buffer streaming bodies, so this is a plain ASGI callable. It is the outermost layer of
every app, which gives it jobs no inner layer can do:

* bind `request_id` and `audience` to every log line of the request
  (`gateway.core.observability.log_context`), and echo the id in `X-Request-ID`;
* let the audience adjust the headers of every response (`ResponseHeaders`: the public
  port's security headers), here rather than in a layer of its own, which would cost
  another coroutine frame and another send wrapper per request;
* enforce the body size limit on `Content-Length` up front and on streamed bodies as
  they arrive (the latter raises a 413 inside the app, rendered as a problem); a route
  that takes bigger bodies (job uploads) gets its own limit by exact path
  (`body_limits`), so the default stays small for every other route;
* log one `request` line and record the HTTP metrics, labelled by route template; a
  long-lived response (an SSE stream, which marks itself with `LONG_LIVED_STATE`)
  records its latency up to its first byte, since its total is the client's stay, and
  minutes-long streams would otherwise fill the port's p99 (the log line keeps the
  whole duration);
* turn an exception nothing else handled into a 500 problem document with the request
  id, and log it once with its stack trace (Starlette's own fallback would re-raise and
  let uvicorn print a second, context-free traceback);
* answer a request that the end of the shutdown grace period cancelled with a 503
  naming the dependency it waited on, logged as its one `request` line without a
  traceback (`shutdown_answer.py`);
* answer the liveness probe `GET /health` itself. It depends on nothing by definition,
  and probes from every replica and load balancer hit it constantly: answering here
  skips FastAPI's routing and dependency machinery (about 60 µs per request) while
  keeping the request id, log and metrics every request gets.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.middleware.shutdown_answer import consume_shutdown_cancel, shutdown_problem
from gateway.api.problems import send_problem
from gateway.core.audience import Audience
from gateway.core.errors import GatewayError, PayloadTooLarge
from gateway.core.observability.http_metrics import UNMATCHED, HttpMetrics
from gateway.core.observability.log_context import end_request, start_request

REQUEST_ID_HEADER = b"x-request-id"
HEALTH_PATH = "/health"
HEALTH_BODY = b'{"status":"ok"}'
_HEALTH_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(HEALTH_BODY)).encode()),
]
# Generated ids: 64 random bits per process, then a counter. The shape of uuid4().hex
# (32 hex digits) without a system call per request; ids correlate log lines, nothing
# needs them unguessable.
_ID_PREFIX = os.urandom(8).hex()
_ID_SEQUENCE = itertools.count(1)
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
# Probes and scrapes arrive every few seconds from every replica; logging each at info
# would drown real traffic, so successful ones are logged at debug.
_QUIET_PATHS = frozenset({HEALTH_PATH, "/ready", "/metrics"})
# Set to True in `scope["state"]` by a response that stays open for as long as its
# client wants (see the module docstring).
LONG_LIVED_STATE = "long_lived_response"

_NO_FIELDS: dict[str, str] = {}

RawHeaders = list[tuple[bytes, bytes]]
# Given the request scope and a response's headers, the headers to send instead.
ResponseHeaders = Callable[[Scope, RawHeaders], RawHeaders]

log = structlog.get_logger("gateway.request")
_stdlib_log = logging.getLogger("gateway.request")


async def _health_endpoint(_request: object) -> None:  # pragma: no cover - never routed
    """Liveness probe: 200 while the process runs; touches no dependency."""


# The route object the fast path reports, so logs and metrics name `/health` like any
# other route template.
HEALTH_ROUTE = Route(HEALTH_PATH, _health_endpoint, methods=["GET"])


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if _SANE_REQUEST_ID.match(value):
                return bytes(value).decode("ascii")
            break
    return f"{_ID_PREFIX}{next(_ID_SEQUENCE):016x}"


def _body_framing(scope: Scope) -> tuple[int | None, bool]:
    """The request's `Content-Length` (None: absent or unreadable) and whether its body
    is chunked, the one framing whose size nothing bounds before it arrives."""
    length: int | None = None
    chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length" and length is None:
            length = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


class RequestContextMiddleware:
    """Outermost middleware of every app; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        audience: Audience,
        max_body_bytes: int,
        metrics: HttpMetrics,
        response_headers: ResponseHeaders | None = None,
        body_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.audience = audience.value
        self.max_body_bytes = max_body_bytes
        self.body_limits = dict(body_limits or {})
        self.metrics = metrics
        self.response_headers = response_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        fields = start_request(request_id, self.audience)
        started = time.perf_counter()
        status = 500
        response_started = False
        first_byte = 0.0
        waited_on: str | None = None
        header_value = request_id.encode("ascii")
        adjust = self.response_headers

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started, first_byte
            if message["type"] == "http.response.start":
                first_byte = time.perf_counter()
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", ()))
                if adjust is not None:
                    headers = adjust(scope, headers)
                headers.append((REQUEST_ID_HEADER, header_value))
                message["headers"] = headers
            await send(message)

        try:
            length, chunked = _body_framing(scope)
            limit = self.max_body_bytes
            if self.body_limits:
                limit = self.body_limits.get(scope["path"], limit)
            if length is not None and length > limit:
                await send_problem(
                    send_with_id,
                    PayloadTooLarge(self._too_large_detail(limit)),
                    instance=scope["path"],
                    request_id=request_id,
                )
            elif scope["path"] == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
                scope["route"] = HEALTH_ROUTE
                await send_with_id(
                    {"type": "http.response.start", "status": 200, "headers": _HEALTH_HEADERS}
                )
                body = HEALTH_BODY if scope["method"] == "GET" else b""
                await send_with_id({"type": "http.response.body", "body": body})
            else:
                # The HTTP server never delivers more than a Content-Length announced, so
                # only chunked bodies need counting as they arrive.
                receive = self._limited(receive, limit) if chunked else receive
                await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled_exception", method=scope["method"], path=scope["path"])
            if not response_started:
                await send_problem(
                    send_with_id, GatewayError(), instance=scope["path"], request_id=request_id
                )
        except asyncio.CancelledError as exc:
            # The task ends here either way; answering it is all that is left to do, so
            # the cancellation is consumed rather than handed to uvicorn (a traceback
            # and a bare 500). A response already under way cannot change: uvicorn
            # closes the connection when the task returns without completing it.
            if not consume_shutdown_cancel():
                raise
            problem = shutdown_problem(exc)
            waited_on = problem.extra["dependency"]
            if not response_started:
                await send_problem(
                    send_with_id, problem, instance=scope["path"], request_id=request_id
                )
        finally:
            self._finish(scope, status, started, waited_on, first_byte)
            # Also drops what the planes bound during the request (worker, task, principal).
            end_request(fields)

    def _too_large_detail(self, limit: int) -> str:
        return f"Request body exceeds {limit} bytes"

    def _limited(self, receive: Receive, limit: int) -> Receive:
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException, not our PayloadTooLarge: FastAPI re-raises only
                    # HTTPException from body parsing and turns anything else into a 400.
                    raise HTTPException(413, self._too_large_detail(limit))
            return message

        return receive_limited

    def _finish(
        self,
        scope: Scope,
        status: int,
        started: float,
        waited_on: str | None = None,
        first_byte: float = 0.0,
    ) -> None:
        elapsed = time.perf_counter() - started
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        measured = elapsed
        if first_byte and scope["state"].get(LONG_LIVED_STATE):
            measured = first_byte - started
        self.metrics.observe(template, scope["method"], status, measured)
        if status >= 500:
            level = logging.ERROR
        elif scope["path"] in _QUIET_PATHS and status < 400:
            level = logging.DEBUG
        else:
            level = logging.INFO
        # Checked here so a filtered line costs one cached lookup, not a processor chain.
        if _stdlib_log.isEnabledFor(level):
            log.log(
                level,
                "request",
                method=scope["method"],
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                # Only a request cancelled by shutdown says what it was waiting on.
                **(_NO_FIELDS if waited_on is None else {"cancelled_waiting_on": waited_on}),
            )
