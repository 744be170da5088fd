"""RFC 9457 problem documents and the exception handlers every app installs.

One shape for every error on every port: `type`, `title`, `status`, `detail`,
`instance`, `request_id`, plus class-specific members (`errors` for validation,
`reason` for auth failures, `dependency` for 503s). Validation errors list the offending
fields by location but never echo the submitted values: they may be credentials.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Send

from gateway.core.errors import PROBLEM_BASE, GatewayError, InvalidInput
from gateway.kit.field_errors import field_errors

PROBLEM_CONTENT_TYPE = "application/problem+json"

_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Payload too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def problem_document(
    *,
    type_uri: str,
    title: str,
    status: int,
    detail: str,
    instance: str,
    request_id: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the JSON members of a problem document."""
    doc: dict[str, Any] = {
        "type": type_uri,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": request_id,
    }
    if extra:
        doc.update(extra)
    return doc


def problem_bytes(error: GatewayError, *, instance: str, request_id: str | None) -> bytes:
    """Serialise a `GatewayError` as a problem document."""
    doc = problem_document(
        type_uri=error.type_uri,
        title=error.title,
        status=error.status,
        detail=error.detail,
        instance=instance,
        request_id=request_id,
        extra=error.extra,
    )
    return json.dumps(doc, separators=(",", ":")).encode()


async def send_problem(
    send: Send, error: GatewayError, *, instance: str, request_id: str | None
) -> None:
    """Send `error` as a whole ASGI response (for layers in front of the exception
    handlers)."""
    body = problem_bytes(error, instance=instance, request_id=request_id)
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem_response(error: GatewayError, request: Request) -> Response:
    """The HTTP response for a `GatewayError` raised while serving `request`."""
    body = problem_bytes(error, instance=request.url.path, request_id=_request_id(request))
    return Response(
        body, status_code=error.status, headers=error.headers, media_type=PROBLEM_CONTENT_TYPE
    )


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return problem_response(exc, request)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return problem_response(InvalidInput(field_errors(list(exc.errors()))), request)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    body = problem_document(
        type_uri=PROBLEM_BASE + slug,
        title=title,
        status=exc.status_code,
        detail=detail,
        instance=request.url.path,
        request_id=_request_id(request),
    )
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
        media_type=PROBLEM_CONTENT_TYPE,
    )


async def _unhandled(request: Request, exc: Exception) -> Response:
    # Starlette's server-error middleware sends this and re-raises; the request context
    # outside it logs the traceback once and sends nothing more.
    return problem_response(GatewayError(), request)


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error the app can raise as `application/problem+json`."""
    app.add_exception_handler(Exception, _unhandled)
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
