"""What a request cancelled by the end of the shutdown grace period is answered.

When the graceful timeout (`GRACEFUL_TIMEOUT_S`) ends with requests still in flight,
uvicorn cancels their tasks; left alone, each would reach uvicorn as a `CancelledError`,
be logged with a traceback and answered a bare `500 text/plain`. Nothing in the request
failed, though: it was waiting on a dependency when this replica stopped, and the client
should simply retry (against another replica). The request context middleware catches
that cancellation and answers with `shutdown_problem`: a 503 problem document with
`Retry-After`, naming the dependency the request was waiting on.

Which dependency is read from the cancellation's own traceback, which runs from the
middleware down to the `await` the task was suspended in: the innermost frame of a Redis
client module means Redis, of asyncpg or SQLAlchemy means the database. This costs
nothing on requests that are not cancelled (no context variable is set around every
Redis or database call for it); a request suspended anywhere else is answered
`dependency: "shutting down"`.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from gateway.core.errors import DependencyUnavailable

SHUTTING_DOWN = "shutting down"
# Top-level packages of the clients each dependency is reached through, as the
# dependency is named in every other 503 (`gateway.kit.outage`).
_CLIENT_PACKAGES = {
    "redis": "redis",
    "hiredis": "redis",
    "asyncpg": "database",
    "sqlalchemy": "database",
}


def consume_shutdown_cancel() -> bool:
    """If the running task itself was cancelled, take that cancellation back and say so.

    The request task ends right after its answer, so nothing needs the cancellation any
    more; `uncancel` keeps the task's count honest for anything that checks it. A
    `CancelledError` reaching the outermost middleware while its task has no pending
    cancellation is a bug below (a cancelled inner future leaking), not a shutdown:
    `False`, and it stays loud.
    """
    task = asyncio.current_task()
    if task is None or task.cancelling() == 0:
        return False
    task.uncancel()
    return True


def waited_on(exc: BaseException) -> str:
    """The dependency the cancelled request was suspended on, or "shutting down"."""
    dependency = SHUTTING_DOWN
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        found = _CLIENT_PACKAGES.get(module.partition(".")[0])
        if found is not None:
            dependency = found  # keep going: the innermost client frame decides
        tb = tb.tb_next
    return dependency


def shutdown_problem(exc: BaseException) -> DependencyUnavailable:
    """The 503 for a request cancelled by shutdown while waiting on a dependency."""
    dependency = waited_on(exc)
    if dependency == SHUTTING_DOWN:
        detail = "The gateway is shutting down; retry the request"
    else:
        detail = f"The gateway shut down while waiting on {dependency}; retry the request"
    return DependencyUnavailable(dependency, detail)
