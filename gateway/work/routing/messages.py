"""The message format between the gateway and Celery task authors (no Celery import).

To Celery: `send_task(route.task, kwargs=...)` with the kwargs below, the Celery task id
`<task_id>.<lease_id>` (a lease id never contains a dot), `expires` at the lease's end
and two callbacks addressed to the audience's results queue: `link` (`RESULT_TASK`,
Celery sends the task's return value) and `link_error` (`ERROR_TASK`, Celery sends the
Celery task id of a task that raised). Both callback messages carry the Celery task id
in their `parent_id` header, so the gateway knows the (task, lease) of every result
without trusting what the task returned, and carry `published_at` (kwarg) for the
results lag.

Back from Celery, the task's return value is what a HTTP worker posts for one item of
`POST /internal/results`, without the ids: `{"status": "succeeded", "data": {...}}` or
`{"status": "failed", "error": {"message": "...", "retryable": true}}`. A return value
without `status` is taken as the data of a succeeded result.
"""

from __future__ import annotations

from typing import Any

from gateway.work.holder import LeaseHolder
from gateway.work.models import LeasedTask

RESULT_TASK = "gateway.result"
ERROR_TASK = "gateway.error"
# The holder of every Celery lease: token ids start at 1, so no worker token is 0.
CELERY_HOLDER = LeaseHolder(0, "celery")
RAISED = "the Celery task raised (see the Celery worker's log)"
# The callbacks' only kwarg: when the gateway published the task (Unix time, seconds).
PUBLISHED_AT = "published_at"


def celery_task_id(task_id: str, lease_id: str) -> str:
    """The Celery task id of one lease of a task."""
    return f"{task_id}.{lease_id}"


def split_celery_task_id(value: object) -> tuple[str, str] | None:
    """(task id, lease id) from a Celery task id, or None if it is not one of ours."""
    if not isinstance(value, str) or value.count(".") != 1:
        return None
    task_id, lease_id = value.split(".")
    if not task_id or not lease_id or len(value) > 200:
        return None
    return task_id, lease_id


def task_kwargs(audience: str, task: LeasedTask) -> dict[str, Any]:
    """The kwargs a Celery task receives."""
    return {
        "task_id": task.task_id,
        "lease_id": task.lease_id,
        "audience": audience,
        "platform": task.platform,
        "key": task.key,
        "payload": task.payload,
        "attempt": task.attempt,
    }


def result_item(task_id: str, lease_id: str, returned: Any) -> dict[str, Any]:
    """The results item for a Celery task's return value."""
    if isinstance(returned, dict) and "status" in returned:
        item = {k: v for k, v in returned.items() if k not in ("task_id", "lease_id")}
    else:
        item = {"status": "succeeded", "data": returned}
    return {"task_id": task_id, "lease_id": lease_id, **item}


def failure_item(task_id: str, lease_id: str, message: str, retryable: bool) -> dict[str, Any]:
    """A failed results item for a lease (a raised task, a publish that failed)."""
    return {
        "task_id": task_id,
        "lease_id": lease_id,
        "status": "failed",
        "error": {"message": message[:2000], "retryable": retryable},
    }
