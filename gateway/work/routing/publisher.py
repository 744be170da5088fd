"""Publishing leased tasks to Celery with Celery's own client API (`send_task`).

The Celery app here is a client only: it never runs a worker and has no result backend
(results come back on a results queue, see `consumer.py`). `send_task` is blocking
(kombu), so a batch is published from a worker thread; each task's outcome is reported
separately, so one failed publish fails just its lease.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery, Signature

from gateway.core.settings.celery import CeleryRoute
from gateway.work.models import LeasedTask
from gateway.work.routing.messages import (
    ERROR_TASK,
    PUBLISHED_AT,
    RESULT_TASK,
    celery_task_id,
    task_kwargs,
)

# A broker that does not answer must not hold a dispatch pass for long: one quick
# retry, then the lease is failed (and retried with backoff like any failure).
RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}


def celery_client(broker_url: str, transport_options: dict[str, Any]) -> Celery:
    """A Celery app used only to send tasks."""
    app = Celery("gateway", broker=broker_url, set_as_current=False)
    app.conf.update(
        broker_transport_options=transport_options,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_connection_retry_on_startup=False,
        broker_connection_timeout=2.0,
    )
    return app


@dataclass(frozen=True)
class Published:
    """One task's publish: None when it went out, else the error's type name."""

    task: LeasedTask
    error: str | None


class Publisher:
    """Sends one audience's leased tasks to their Celery routes."""

    def __init__(self, app: Celery, audience: str, results_queue: str) -> None:
        self.app = app
        self.audience = audience
        self.results_queue = results_queue

    def _callbacks(self) -> tuple[Signature, Signature]:
        # The publish time rides in the callbacks' kwargs (Celery keeps a signature's
        # kwargs when it applies it), so whichever replica consumes the result can
        # measure the results lag; task authors' kwargs stay as documented.
        options = {"queue": self.results_queue}
        kwargs = {PUBLISHED_AT: time.time()}
        return (
            Signature(RESULT_TASK, kwargs=kwargs, app=self.app, options=options),
            Signature(ERROR_TASK, kwargs=kwargs, app=self.app, options=options),
        )

    def publish(self, tasks: Sequence[tuple[LeasedTask, CeleryRoute]]) -> list[Published]:
        """Send each task (blocking; call from a thread)."""
        out = []
        for task, route in tasks:
            link, link_error = self._callbacks()
            try:
                self.app.send_task(
                    route.task,
                    kwargs=task_kwargs(self.audience, task),
                    task_id=celery_task_id(task.task_id, task.lease_id),
                    queue=route.queue,
                    # A message still queued when its lease ends is discarded by the
                    # worker: the reaper has retried the task under a new lease by then.
                    expires=task.lease_expires_at,
                    link=link,
                    link_error=link_error,
                    retry=True,
                    retry_policy=RETRY_POLICY,
                )
            except Exception as exc:  # any broker failure fails this lease only
                out.append(Published(task, type(exc).__name__))
            else:
                out.append(Published(task, None))
        return out
