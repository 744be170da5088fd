"""Which errors each operation can answer, read off the route rather than declared on it.

Most of a route's error answers come from what it depends on, not from its own code: a
worker token (401), a role (403), the public authenticator and limiter (401, 429), a
body (413, 422), a parameter (422), a resource named in the path (404), a backend or a
replica shutting down (503, on every route). So the documents derive them from the
route's dependency tree and its parameters (`errors_for`), and only what a service
raises for reasons of its own (a job already finished: 409; a revoked download: 410;
credits spent: 402) is listed here by operation, in `_SERVICE_ERRORS`. A route may also
declare responses itself (`responses=` on the decorator): its descriptions win, and the
problem content is added to them.

The property-based run in tests/api/openapi/ checks the result against the server: an
answer whose status a document does not list fails it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from gateway.api.external.jobs_deps import get_owner
from gateway.api.external.public_deps import get_caller, get_principal
from gateway.api.external.watches import get_watch_owner
from gateway.api.external.webhooks import get_webhook_owner
from gateway.api.internal.auth import authenticate_worker, require_producer
from gateway.public.permissions import Permission

_ANONYMOUS = "Anonymous callers (ANONYMOUS_TIER) have no account to own this"

# What a dependency adds to every route that uses it, directly or through another.
_DEPENDENCY_ERRORS: dict[Callable[..., Any], dict[int, str]] = {
    authenticate_worker: {
        401: "Missing, unknown, revoked or other-audience `X-Worker-Token` (`reason` says which)"
    },
    require_producer: {403: "The token's role is `worker`; enqueueing needs `producer`"},
    get_principal: {
        401: "Missing or invalid credentials (`reason` says which)",
        429: "Too many failed authentications from this address; retry after `Retry-After`",
    },
    get_caller: {429: "Rate limit or daily quota exceeded; retry after `Retry-After`"},
    get_owner: {403: _ANONYMOUS},
    get_webhook_owner: {403: _ANONYMOUS},
    get_watch_owner: {403: _ANONYMOUS},
}

# What services raise for reasons of their own, by operation (the route's name).
_SERVICE_ERRORS: dict[str, dict[int, str]] = {
    "submit_job": {402: "The job would cost more credits than the caller has left today"},
    "submit_job_batch": {402: "The jobs would cost more credits than the caller has left today"},
    "upload_job": {402: "The job would cost more credits than the caller has left today"},
    "cancel_job": {409: "The job has already finished"},
    "admin_cancel_job": {409: "The job has already finished"},
    "force_job_state": {409: "The job has already finished"},
    "create_key": {403: "Only admins may create keys of another tier; keys belong to users"},
    "list_keys": {403: "Only a user (or a user's key) can manage API keys"},
    "rotate_key": {403: "Only a user (or a user's key) can manage API keys"},
    "revoke_key": {403: "Only a user (or a user's key) can manage API keys"},
    "download": {
        403: "The link is not valid for this job",
        410: "The job no longer exists, or the link was revoked",
    },
    "create_stream_ticket": {404: "A job the ticket should cover does not exist"},
    # Authenticated inside the route (a stream ticket, or credentials as elsewhere).
    "job_events": {
        400: "A long-lived credential was put in the query string",
        401: "Missing, invalid or expired ticket or credentials, or both sent",
        403: "The stream ticket does not cover this job",
        429: "Rate limit or daily quota exceeded; retry after `Retry-After`",
    },
    "create_webhook": {403: "Webhooks are not part of the caller's tier"},
    "create_watch": {403: "Parcel watches are not part of the caller's tier"},
    "redeliver": {409: "The delivery cannot be redelivered in its current state"},
}

_UNAVAILABLE = (
    "A backend is unavailable, or this replica is shutting down; retry after `Retry-After`"
)


def _tree(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _tree(sub)


def _permission_errors(call: object) -> dict[int, str]:
    """What a route's permission declaration (`gateway/api/external/requires.py`) adds:
    403 when it names a scope the credential may lack, and 429 when it also admits the
    request (the limiter); its authentication (401) comes from `get_principal` below it."""
    permission = getattr(call, "permission", None)
    if not isinstance(permission, Permission):
        return {}
    out: dict[int, str] = {}
    if permission.scope is not None:
        out[403] = f"The credential lacks the `{permission.scope.value}` scope (`missing-scope`)"
    if getattr(call, "admits", False):
        out[429] = "Rate limit or daily quota exceeded; retry after `Retry-After`"
    return out


def errors_for(route: APIRoute) -> dict[int, str]:
    """Every error status `route` can answer, each with a description."""
    tree = list(_tree(route.dependant))
    errors: dict[int, str] = {}
    for node in tree:
        declared = _DEPENDENCY_ERRORS.get(node.call, {}) if node.call is not None else {}
        for status, description in declared.items():
            errors.setdefault(status, description)
        for status, description in _permission_errors(node.call).items():
            errors.setdefault(status, description)
    body = any(node.body_params for node in tree)
    path = any(node.path_params for node in tree)
    if body:
        # FastAPI's own answer to a body it cannot decode at all (not UTF-8).
        errors[400] = "The body cannot be parsed"
        errors[413] = "The request body exceeds the configured limit (MAX_BODY_BYTES)"
    if body or path or any(node.query_params or node.header_params for node in tree):
        errors[422] = "A parameter or the body failed validation (`errors` lists the fields)"
    if path:
        errors[404] = "Nothing of that id here (or not visible to the caller)"
    errors.update(_SERVICE_ERRORS.get(route.name, {}))
    errors[503] = _UNAVAILABLE
    return errors
