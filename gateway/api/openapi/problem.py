"""The problem document as an OpenAPI schema, and the error responses built from it.

This is the shape `gateway.api.problems` emits for every error on every port (RFC 9457
with the gateway's members): kept beside the handlers' vocabulary so the documents
cannot name a member the handlers never send. `request_id` is null only for an answer
sent before the request context ran (it never is in practice, but the handlers allow it).
"""

from __future__ import annotations

from typing import Any

from gateway.api.problems import PROBLEM_CONTENT_TYPE
from gateway.core.errors import PROBLEM_BASE

PROBLEM = "Problem"
VALIDATION_PROBLEM = "ValidationProblem"
FIELD_ERROR = "FieldError"

_REF = "#/components/schemas/"

SCHEMAS: dict[str, dict[str, Any]] = {
    PROBLEM: {
        "title": PROBLEM,
        "description": "An RFC 9457 problem document; `type` is stable per kind of error.",
        "type": "object",
        "required": ["type", "title", "status", "detail", "instance", "request_id"],
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "description": f"A URI under {PROBLEM_BASE} naming the kind of error",
                "examples": [PROBLEM_BASE + "not-found"],
            },
            "title": {"type": "string", "description": "Short summary of the kind of error"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "description": "What went wrong with this request"},
            "instance": {"type": "string", "description": "The request path"},
            "request_id": {
                "type": ["string", "null"],
                "description": "The request's `X-Request-ID`, as logged",
            },
            "reason": {
                "type": "string",
                "description": "401 only: why the credentials were refused",
                "examples": ["missing_credentials", "invalid_credentials"],
            },
            "dependency": {
                "type": "string",
                "description": "503 only: the backend that is unavailable",
                "examples": ["redis", "database"],
            },
            "errors": {
                "type": "array",
                "description": "422 only: the fields that failed validation",
                "items": {"$ref": _REF + FIELD_ERROR},
            },
        },
        # Some answers add members of their own (`failing` and `checks` on /ready).
        "additionalProperties": True,
    },
    VALIDATION_PROBLEM: {
        "title": VALIDATION_PROBLEM,
        "description": "A 422 problem document listing the offending fields.",
        "allOf": [{"$ref": _REF + PROBLEM}, {"type": "object", "required": ["errors"]}],
    },
    FIELD_ERROR: {
        "title": FIELD_ERROR,
        "description": "One invalid field; the submitted value is never echoed.",
        "type": "object",
        "required": ["loc", "msg", "type"],
        "properties": {
            "loc": {
                "type": "array",
                # A field name, or the index of a list item (`["body", "items", 0]`).
                "items": {"type": ["string", "integer"]},
                "description": "Where: `body`, `query`, `path` or `header`, then the field",
                "examples": [["query", "limit"]],
            },
            "msg": {"type": "string"},
            "type": {"type": "string", "examples": ["missing", "value_error"]},
        },
        "additionalProperties": False,
    },
}

_RETRY_AFTER = {
    "description": "Seconds to wait before retrying",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}
_RATELIMIT = {
    "description": "The caller's remaining allowance (IETF draft RateLimit header fields)",
    "schema": {"type": "string"},
}
_RATELIMIT_POLICY = {
    "description": "The caller's tier policy (IETF draft RateLimit header fields)",
    "schema": {"type": "string"},
}

LIMIT_HEADERS = {"RateLimit": _RATELIMIT, "RateLimit-Policy": _RATELIMIT_POLICY}


def response_headers(status: int) -> dict[str, Any]:
    """The headers an error answer of `status` carries, as OpenAPI header objects."""
    if status == 429:
        # Every 429 says when to retry; the limiter's also carry the RateLimit fields
        # (a blocked address's 429 does not: no limiter ran).
        return {"Retry-After": {**_RETRY_AFTER, "required": True}, **LIMIT_HEADERS}
    if status == 503:
        return {"Retry-After": _RETRY_AFTER}
    return {}


def problem_response(status: int, description: str) -> dict[str, Any]:
    """An OpenAPI response object for an error answered as a problem document."""
    schema = VALIDATION_PROBLEM if status == 422 else PROBLEM
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _REF + schema}}},
    }
    headers = response_headers(status)
    if headers:
        response["headers"] = headers
    return response
