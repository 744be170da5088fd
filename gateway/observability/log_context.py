"""Fields that let one task, one worker or one user be followed across log lines.

Every line of a request already carries `request_id` and `audience` (bound by the
request middleware). The planes add their own identifiers with these helpers, which
bind structlog context variables under fixed names, so every later line of the same
request, *including the middleware's final `request` line*, carries them:

    worker plane    bind_worker(worker_id, task_id=..., lease_id=..., platform=...)
    public plane    bind_principal(principal_id, tier=...)
    background job  with log_context(task_id=..., lease_id=...): ...

Rules that keep this safe and cheap:

* Bind identifiers, never credentials: the principal id is the stable id of a user or
  API key (a Firebase uid, a key id), not the token or key itself. The redaction
  processor in `gateway.logs` masks credential-looking *keys*, not values.
* Call the `bind_*` helpers from async code (a route, an async dependency, a service).
  A sync dependency runs in a worker thread, and what it binds there is lost.
* Request bindings end with the request: the middleware clears the context when the
  response is done, so nothing leaks into the next request served by the same task
  (in-process test clients run requests in the caller's task).
* `None` values are skipped rather than logged as `null`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import structlog

WORKER_ID = "worker_id"
TASK_ID = "task_id"
LEASE_ID = "lease_id"
PLATFORM = "platform"
PRINCIPAL_ID = "principal_id"
TIER = "tier"


def _present(fields: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in fields.items() if v is not None}


def bind_worker(
    worker_id: str,
    *,
    task_id: str | None = None,
    lease_id: str | None = None,
    platform: str | None = None,
) -> None:
    """Tag the rest of this request's log lines with the worker (and task/lease) ids."""
    structlog.contextvars.bind_contextvars(
        **_present({WORKER_ID: worker_id, TASK_ID: task_id, LEASE_ID: lease_id, PLATFORM: platform})
    )


def bind_task(task_id: str, *, lease_id: str | None = None, platform: str | None = None) -> None:
    """Tag the rest of this request's log lines with a task (and lease) id."""
    structlog.contextvars.bind_contextvars(
        **_present({TASK_ID: task_id, LEASE_ID: lease_id, PLATFORM: platform})
    )


def bind_principal(principal_id: str, *, tier: str | None = None) -> None:
    """Tag the rest of this request's log lines with the caller's id (never its secret)."""
    structlog.contextvars.bind_contextvars(**_present({PRINCIPAL_ID: principal_id, TIER: tier}))


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Bind fields for a block only (e.g. one task handled by a background job)."""
    with structlog.contextvars.bound_contextvars(**_present(fields)):
        yield
