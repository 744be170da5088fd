"""Fields that let one request, task, worker or user be followed across log lines.

Every line of a request carries `request_id` and `audience` (bound by the request
middleware with `start_request`). The planes add their own identifiers with these
helpers, under fixed names, so every later line of the same request, *including the
middleware's final `request` line*, carries them:

    worker plane    bind_worker(worker_id, task_id=..., lease_id=..., platform=...)
    public plane    bind_principal(principal_id, tier=...)
    background job  with log_context(task_id=..., lease_id=...): ...

The fields live in **one** context variable holding an immutable-by-convention dict
(`merge_log_fields` is the structlog processor that adds them to each line). structlog's
own `contextvars` helpers keep one context variable per field and clear them by walking
the whole context: at every request's start and end that cost ~5 % of a cache hit's CPU,
where one `ContextVar.set` and one `reset` cost almost nothing. A bind replaces the
dict rather than mutating it, so a task started during a request (which copies the
context) never changes what its parent logs, as with structlog's helpers.

Rules that keep this safe and cheap:

* Bind identifiers, never credentials: the principal id is the stable id of a user or
  API key (a Firebase uid, a key id), not the token or key itself. The redaction
  processor in `gateway.core.logs` masks credential-looking *keys*, not values.
* Call the `bind_*` helpers from async code (a route, an async dependency, a service).
  A sync dependency runs in a worker thread, and what it binds there is lost.
* Request bindings end with the request: the middleware restores the previous fields
  when the response is done, so nothing leaks into the next request served by the same
  task (in-process test clients run requests in the caller's task).
* `None` values are skipped rather than logged as `null`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from contextvars import ContextVar, Token
from typing import Any

_EMPTY: Mapping[str, str] = {}
_FIELDS: ContextVar[Mapping[str, str]] = ContextVar("gateway_log_fields", default=_EMPTY)

WORKER_ID = "worker_id"
TASK_ID = "task_id"
LEASE_ID = "lease_id"
PLATFORM = "platform"
PRINCIPAL_ID = "principal_id"
TIER = "tier"


def _present(fields: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in fields.items() if v is not None}


def _bind(fields: Mapping[str, str]) -> Token[Mapping[str, str]]:
    return _FIELDS.set({**_FIELDS.get(), **fields})


def start_request(request_id: str, audience: str) -> Token[Mapping[str, str]]:
    """Start a request's fields (replacing any left over); `end_request` restores them."""
    return _FIELDS.set({"request_id": request_id, "audience": audience})


def end_request(token: Token[Mapping[str, str]]) -> None:
    """Drop what the request bound: the fields are what they were before it started."""
    _FIELDS.reset(token)


def merge_log_fields(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the bound fields, unless the log call names them itself."""
    for key, value in _FIELDS.get().items():
        event_dict.setdefault(key, value)
    return event_dict


def bind_worker(
    worker_id: str,
    *,
    task_id: str | None = None,
    lease_id: str | None = None,
    platform: str | None = None,
) -> None:
    """Tag the rest of this request's log lines with the worker (and task/lease) ids."""
    _bind(
        _present({WORKER_ID: worker_id, TASK_ID: task_id, LEASE_ID: lease_id, PLATFORM: platform})
    )


def bind_task(task_id: str, *, lease_id: str | None = None, platform: str | None = None) -> None:
    """Tag the rest of this request's log lines with a task (and lease) id."""
    _bind(_present({TASK_ID: task_id, LEASE_ID: lease_id, PLATFORM: platform}))


def bind_principal(principal_id: str, *, tier: str | None = None) -> None:
    """Tag the rest of this request's log lines with the caller's id (never its secret)."""
    # Spelled out rather than through `_present`: every authenticated request binds this.
    fields = {**_FIELDS.get(), PRINCIPAL_ID: principal_id}
    if tier is not None:
        fields[TIER] = tier
    _FIELDS.set(fields)


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Bind fields for a block only (e.g. one task handled by a background job)."""
    token = _bind(_present(fields))
    try:
        yield
    finally:
        _FIELDS.reset(token)
