"""Each port's OpenAPI document: FastAPI's, completed where FastAPI cannot know better.

FastAPI documents what a route's signature says: its parameters, its body and its
success answer, plus a 422 of its own `HTTPValidationError` shape as `application/json`.
What the gateway really answers differs, and a client generated from the bare document
would be wrong about every error. `build_document` therefore, once per app:

- documents every error an operation can answer (`errors.errors_for`) as what the
  handlers send: `application/problem+json` with the `Problem` schema (`problem.py`),
  replacing FastAPI's 422 and giving problem content to the routes' own declarations;
- names the credentials as security schemes (`X-API-Key` or a bearer token on the
  public port, `X-Worker-Token` on the worker ports) instead of leaving the worker
  token as a plain header parameter, so generated clients treat it as a secret;
- documents `Idempotency-Key` on the public POSTs, which a layer in front of the routes
  honours (`gateway/api/middleware/idempotency.py`), with the answers it adds;
- gives every operation a stable, readable id: the route's function name in camelCase
  (see `operation_id`), which generated SDKs use as method names.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.responses import Response

from gateway.api.openapi.errors import errors_for
from gateway.api.openapi.problem import LIMIT_HEADERS, SCHEMAS, problem_response
from gateway.core.audience import Audience
from gateway.public.idempotency import HEADER as IDEMPOTENCY_HEADER
from gateway.public.idempotency import MAX_KEY_LENGTH

YAML_PATH = "/openapi.yaml"
# RFC 9512's media type for YAML.
YAML_MEDIA_TYPE = "application/yaml"
_CREDENTIAL_PARAMETER = "x-worker-token"
_IDEMPOTENT_PREFIX = "/v1/"

SECURITY_SCHEMES: dict[Audience, dict[str, dict[str, Any]]] = {
    Audience.PUBLIC: {
        "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "bearerToken": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Firebase ID token, or an access token of a configured OIDC issuer",
        },
    },
    Audience.PARCEL: {"workerToken": {"type": "apiKey", "in": "header", "name": "X-Worker-Token"}},
    Audience.PARTY: {"workerToken": {"type": "apiKey", "in": "header", "name": "X-Worker-Token"}},
}

# Before OpenAPI 3.2 (`itemSchema`), an event stream's `schema` describes one event.
_EVENT_STREAM = "text/event-stream"
SERVER_SENT_EVENT = "ServerSentEvent"
_SERVER_SENT_EVENT_SCHEMA: dict[str, Any] = {
    "title": SERVER_SENT_EVENT,
    "description": "One Server-Sent Event; `data` is a JSON document (see the job events "
    "schema), `id` what to resume after (`Last-Event-ID`).",
    "type": "object",
    "properties": {
        "event": {"type": "string", "examples": ["snapshot", "job.progress"]},
        "data": {"type": "string"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "retry": {"type": "integer", "minimum": 0},
    },
}

_TAGS: dict[str, str] = {
    "ops": "Readiness of this port's backends",
    "info": "What this port serves",
    "properties": "Parcel records, search and history",
    "account": "The caller, their limits and their API keys",
    "jobs": "Client jobs: refresh many parcels or parties, follow and download them",
    "streams": "Live job events (Server-Sent Events) and stream tickets",
    "webhooks": "Webhook endpoints, their deliveries and the event schemas",
    "watches": "Parcel watches and the changes they recorded",
    "admin": "Operator endpoints (admin role)",
    "work": "The leased-work protocol: enqueue, lease, heartbeat, results",
    "proxy pool": "Outbound proxies leased to workers",
}

_IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Repeat the POST with the same key to get the first answer again, "
    "instead of doing it twice (stored for IDEMPOTENCY_TTL_S)",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH + 2},
}
_IDEMPOTENCY_ERRORS = {
    400: "Malformed `Idempotency-Key`",
    409: "Another request with this `Idempotency-Key` is still being processed",
    422: "The `Idempotency-Key` was used for a different request (or a field is invalid)",
}
# Set on every answer of every port by the request context (gateway/api/middleware/).
_REQUEST_ID_HEADER = {
    "description": "The request's id, as logged (the client's own, if it sent a valid one)",
    "required": True,
    "schema": {"type": "string"},
}
_REPLAYED_HEADER = {
    "description": "`true` when this is the stored answer of an earlier request with the key",
    "schema": {"type": "string", "enum": ["true"]},
}


def operation_id(route: APIRoute) -> str:
    """`get_property` -> `getProperty`: the function name, so ids change only with it."""
    first, *rest = route.name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _security(audience: Audience, anonymous: bool) -> list[dict[str, list[str]]]:
    schemes: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES[audience]]
    return [*schemes, {}] if anonymous else schemes


def _authenticated(errors: dict[int, str]) -> bool:
    return 401 in errors


def _complete(
    operation: dict[str, Any],
    route: APIRoute,
    method: str,
    audience: Audience,
    *,
    anonymous: bool,
) -> None:
    errors = errors_for(route)
    responses: dict[str, Any] = operation.setdefault("responses", {})
    parameters: list[dict[str, Any]] = operation.get("parameters", [])
    idempotent = (
        audience is Audience.PUBLIC
        and method == "post"
        and route.path.startswith(_IDEMPOTENT_PREFIX)
    )
    if idempotent:
        parameters.append(_IDEMPOTENCY_PARAMETER)
        for status, description in _IDEMPOTENCY_ERRORS.items():
            errors.setdefault(status, description)
        for code, response in responses.items():
            if code.startswith("2"):
                response.setdefault("headers", {})["Idempotent-Replayed"] = _REPLAYED_HEADER
    for response in responses.values():
        stream = response.get("content", {}).get(_EVENT_STREAM)
        if stream is not None:
            stream["schema"] = {"$ref": "#/components/schemas/" + SERVER_SENT_EVENT}
    # The worker token is a credential (a security scheme below), not a parameter.
    parameters = [p for p in parameters if p.get("name", "").lower() != _CREDENTIAL_PARAMETER]
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    # The route's own declarations keep their descriptions (FastAPI's 422 does not).
    declared = {
        int(code): response.get("description", "")
        for code, response in responses.items()
        if code.isdigit() and int(code) >= 400 and int(code) != 422
    }
    for status, description in sorted({**errors, **declared}.items()):
        responses[str(status)] = problem_response(status, description)
    admitted = 429 in errors and audience is Audience.PUBLIC
    for code, response in responses.items():
        headers = response.setdefault("headers", {})
        headers["X-Request-ID"] = _REQUEST_ID_HEADER
        if admitted and code.startswith("2"):
            # Every answer the limiter admitted carries the allowance.
            headers.update(LIMIT_HEADERS)
    # Every operation says what it needs, none included (`[]`: no credentials).
    operation["security"] = (
        _security(audience, anonymous and audience is Audience.PUBLIC)
        if _authenticated(errors)
        else []
    )
    operation["operationId"] = operation_id(route)


def _drop_unused_schemas(document: dict[str, Any]) -> None:
    # FastAPI's own validation error schemas, no longer referenced by any response.
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def build_document(app: FastAPI, audience: Audience, *, anonymous: bool) -> dict[str, Any]:
    """The OpenAPI document of `app` (one port), errors and credentials included.

    `anonymous`: the public port admits callers without credentials (ANONYMOUS_TIER).
    """
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
        # Relative: the document is served by the port it describes.
        servers=app.servers or [{"url": "/", "description": "This port"}],
    )
    ids: dict[str, tuple[str, str]] = {}
    # FastAPI wraps included routers in `app.routes`; its own walk yields each route
    # with the path it is served at.
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = str(context.path_format)
        if not isinstance(route, APIRoute) or path not in document["paths"]:
            continue
        path_item = document["paths"][path]
        for method in sorted(route.methods or ()):
            operation = path_item.get(method.lower())
            if operation is None:
                continue
            _complete(operation, route, method.lower(), audience, anonymous=anonymous)
            where = (method, path)
            if ids.setdefault(operation["operationId"], where) != where:
                # Ids are function names: two operations with one would collide in SDKs.
                raise ValueError(f"operation id {operation['operationId']} used twice")
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(SCHEMAS)
    if _EVENT_STREAM in json.dumps(document["paths"]):
        schemas[SERVER_SENT_EVENT] = _SERVER_SENT_EVENT_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES[audience]
    _drop_unused_schemas(document)
    used = {
        tag: None
        for item in document["paths"].values()
        for op in item.values()
        for tag in op.get("tags", [])
    }
    document["tags"] = [
        {"name": tag, "description": _TAGS.get(tag, tag)} for tag in sorted(used, key=_tag_order)
    ]
    return document


def _tag_order(tag: str) -> tuple[int, str]:
    order = list(_TAGS)
    return (order.index(tag) if tag in order else len(order), tag)


class _PlainDumper(yaml.SafeDumper):
    """Writes a shared object out in full each time: the document reuses one header or
    parameter object across operations, and YAML anchors (`&id001`) would puzzle readers
    and some generators."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def install_openapi(app: FastAPI, audience: Audience, *, anonymous: bool) -> None:
    """Make `build_document` the app's document (`/openapi.json`, `/docs`) and serve it
    as YAML too (`/openapi.yaml`), when the app serves its document at all."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app, audience, anonymous=anonymous)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    if app.openapi_url is None:
        return
    rendered: list[bytes] = []

    async def openapi_yaml(request: Request) -> Response:
        if not rendered:
            text = yaml.dump(openapi(), Dumper=_PlainDumper, sort_keys=False, allow_unicode=True)
            rendered.append(text.encode())
        return Response(rendered[0], media_type=YAML_MEDIA_TYPE)

    app.add_route(YAML_PATH, openapi_yaml, include_in_schema=False)
