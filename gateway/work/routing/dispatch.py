"""The Celery dispatcher of one audience: lease routed tasks, publish them to Celery.

Routed tasks wait in `cready:<p>` (`common.lua`). Every replica runs one dispatcher per
routed audience; it leases them as the holder `CELERY_HOLDER`, with
`CELERY_LEASE_TIMEOUT_S`, in one Lua script (so two replicas never publish the same
lease), drops reclaimed tasks already done (as for HTTP workers), and publishes the rest.
A publish that fails becomes a retryable failure of that lease, through the results
path: attempts, backoff and dead letters work as for any worker's failure.

It sleeps until `'@celery'` is published on the audience's wake channel (a routed task
became ready: enqueued, retried, reclaimed, requeued) or `SAFETY_RECHECK_S` passed.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from gateway.core.settings.celery import CeleryRoute
from gateway.kit.periodic import wait_any
from gateway.work.models import LeasedTask
from gateway.work.notifier import SAFETY_RECHECK_S, Notifier
from gateway.work.queue import CELERY_READY, WorkQueue
from gateway.work.results import ResultService
from gateway.work.routing.messages import CELERY_HOLDER, failure_item
from gateway.work.routing.publisher import Publisher

log = structlog.get_logger("gateway.work.routing")

WAKE = "@celery"
_ERROR_PAUSE_S = 1.0
STOP_GRACE_S = 2.0


class Dispatcher:
    """Leases one audience's Celery-routed tasks and publishes them."""

    def __init__(
        self,
        queue: WorkQueue,
        results: ResultService,
        notifier: Notifier,
        publisher: Publisher,
        routes: dict[str, CeleryRoute],
        *,
        batch: int,
        lease_s: float,
        stopping: asyncio.Event,
    ) -> None:
        self.queue = queue
        self.results = results
        self.notifier = notifier
        self.publisher = publisher
        self.routes = routes
        self.batch = batch
        self.lease_s = lease_s
        self.stopping = stopping
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def dispatch_once(self) -> int:
        """Lease and publish one batch; returns how many tasks were leased."""
        platforms = await self.queue.platforms()
        if not platforms:
            return 0
        leased = await self.queue.lease(
            CELERY_HOLDER, platforms, self.batch, ready=CELERY_READY, lease_s=self.lease_s
        )
        if not leased.tasks:
            return 0
        lanes = dict(zip((t.task_id for t in leased.tasks), leased.lanes, strict=True))
        handed = await self.results.drop_done(leased.tasks)
        routed: list[tuple[LeasedTask, CeleryRoute]] = []
        failures = []
        for task in handed:
            route = self.routes.get(lanes[task.task_id])
            if route is None:
                # Routed when a route of that id existed; it is gone from CELERY_ROUTES.
                message = f"no Celery route {lanes[task.task_id]!r} is configured any more"
                failures.append(failure_item(task.task_id, task.lease_id, message, False))
            else:
                routed.append((task, route))
        for published in await asyncio.to_thread(self.publisher.publish, routed):
            if published.error is None:
                if published.task.attempt == 1:
                    self.results.metrics.routed.labels(published.task.platform, "celery").inc()
            else:
                t = published.task
                message = f"could not publish to the Celery broker ({published.error})"
                failures.append(failure_item(t.task_id, t.lease_id, message, True))
        if failures:
            log.warning(
                "celery_dispatch_failed", audience=self.results.audience, tasks=len(failures)
            )
            await self.results.submit(CELERY_HOLDER, failures)
        return len(leased.tasks)

    async def run(self) -> None:
        """Dispatch until stopped."""
        while not (self.stopping.is_set() or self._stop.is_set()):
            with self.notifier.waiter([WAKE]) as woken:
                try:
                    leased = await self.dispatch_once()
                except Exception as exc:  # an outage must not end dispatching
                    log.warning("celery_dispatch_error", error=type(exc).__name__)
                    await wait_any([self.stopping, self._stop], _ERROR_PAUSE_S)
                    continue
                if leased >= self.batch:
                    continue
                await wait_any([woken, self.stopping, self._stop], SAFETY_RECHECK_S)

    def start(self) -> None:
        """Start the loop."""
        self._stop.clear()
        self._task = asyncio.create_task(
            self.run(), name=f"celery-dispatch:{self.results.audience}"
        )

    async def stop(self) -> None:
        """Stop the loop: a pass in progress may finish (its publishes and failures
        recorded) for `STOP_GRACE_S`, then it is cancelled (its leases then run out and
        are retried under new ones)."""
        if self._task is None:
            return
        self._stop.set()
        done, _ = await asyncio.wait({self._task}, timeout=STOP_GRACE_S)
        if not done:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
