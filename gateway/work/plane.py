"""One audience's worker plane: queue, long-poll, results, registry, reaper, tokens.

Each internal app owns one `WorkerPlane` for the life of its lifespan. Leasing asks the
result service to drop reclaimed tasks whose result is already committed (see
`results.py`), so a worker is never handed a task that is done. The reaper runs in
every replica: reclaiming happens inside one Lua script per pass, so replicas never
reclaim the same lease twice, and running it everywhere means there is no leader to lose.

`hooks` (`hooks.py`) is how whoever attaches waiters (the jobs capability, wired by the
app factory) hears of their tasks: the result service calls it for committed and
dead-lettered results, and each reaper pass for tasks it dead-lettered. `watch` (parcel
watches, also wired by the app factory) wraps the parcels' current-row upsert.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Self

from gateway.audit.service import AuditLog
from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.kit.periodic import PeriodicLoop, wait_any
from gateway.work.deadletters import DeadLetters
from gateway.work.holder import LeaseHolder
from gateway.work.hooks import ParcelWatch, TaskHooks
from gateway.work.metrics import WorkerMetrics
from gateway.work.models import TaskIn
from gateway.work.notifier import SAFETY_RECHECK_S, Notifier
from gateway.work.queue import EnqueueOutcome, LeaseBatch, WorkQueue
from gateway.work.registry import WorkerRegistry
from gateway.work.results import ResultService
from gateway.work.routing.lag import LagRecorder
from gateway.work.routing.revoke import CeleryRevoker
from gateway.work.routing.router import AudienceLanes, CeleryRouter
from gateway.work.routing.service import RoutingService
from gateway.work.routing.shares import SharesCache, ShareStore
from gateway.work.scripts import load_scripts
from gateway.work.stats import publish, queue_stats
from gateway.work.tokens import TokenStore, TokenVerifier

if TYPE_CHECKING:
    from gateway.work.routing.bridge import CeleryBridge


def token_store(resources: Resources) -> TokenStore:
    """The token store of the deployment (shared by both worker ports)."""
    return TokenStore(
        resources.sessionmaker, resources.redis, resources.key("worker_tokens", "epoch")
    )


def _router(resources: Resources) -> CeleryRouter:
    store = ShareStore(resources.redis, resources.key("celery", "shares"))
    return CeleryRouter(resources.settings.celery_routes, SharesCache(store))


def celery_router(resources: Resources) -> CeleryRouter | None:
    """The deployment's Celery routes with their runtime shares (None: no routes)."""
    return _router(resources) if resources.settings.celery_enabled else None


def celery_lag_key(resources: Resources) -> str:
    """The hash of the latest Celery results lag per audience (`routing/lag.py`)."""
    return resources.key("celery", "lag")


def celery_revoker(resources: Resources) -> CeleryRevoker | None:
    """What revokes cancelled jobs' Celery tasks (None: no routes; its Celery client is
    built at the first revoke)."""
    settings = resources.settings
    if not settings.celery_enabled:
        return None
    assert settings.celery_broker_url is not None  # settings refuse routes without one
    return CeleryRevoker(
        settings.celery_broker_url,
        dict(settings.celery_broker_transport_options),
        settings.celery_revoke_terminate,
    )


AUDIENCES = ("parcel", "party")


def routing_service(resources: Resources) -> RoutingService:
    """What the admin API and CLI show and change shares through (one path for both)."""
    queues = {a: work_queue(resources, a) for a in AUDIENCES}
    return RoutingService(_router(resources), queues, AuditLog(resources.sessionmaker))


def work_queue(resources: Resources, audience: str) -> WorkQueue:
    """The queue of `audience` (one key layout for the worker ports and for whoever
    attaches waiters from another port); Celery routes, if any, choose each new task's
    side."""
    router = celery_router(resources)
    lanes = None
    if router is not None and audience in router.audiences():
        lanes = AudienceLanes(router, audience)
    return WorkQueue(
        resources.redis,
        load_scripts(resources.redis),
        resources.key("wq", audience, ""),
        resources.settings,
        lanes,
    )


class WorkerPlane:
    """Everything the worker endpoints of one audience need."""

    name: ClassVar[str] = "work"

    @classmethod
    def build(
        cls,
        resources: Resources,
        audience: Audience,
        hooks: TaskHooks | None = None,
        watch: ParcelWatch | None = None,
    ) -> Self:
        """The plane of `audience`'s port (not yet started); `hooks` hear of waited tasks,
        `watch` sees parcels' current rows replaced."""
        return cls(resources, audience.value, hooks, watch)

    def __init__(
        self,
        resources: Resources,
        audience: str,
        hooks: TaskHooks | None = None,
        watch: ParcelWatch | None = None,
    ) -> None:
        settings = resources.settings
        self.resources = resources
        self.audience = audience
        self.settings = settings
        self.queue = work_queue(resources, audience)
        self.metrics = WorkerMetrics.for_registry(resources.metrics.registry(Audience(audience)))
        self.notifier = Notifier(resources.redis, self.queue.wake_channel)
        self.registry = WorkerRegistry(self.queue)
        self.dead_letters = DeadLetters(self.queue, AuditLog(resources.sessionmaker), audience)
        self.results = ResultService(
            audience, self.queue, resources.sessionmaker, self.metrics, hooks, watch
        )
        self.tokens = TokenVerifier(token_store(resources), audience, settings.worker_token_cache_s)
        self.celery: CeleryBridge | None = None
        if self.queue.lanes is not None:
            # Imported here: without Celery routes for this audience, Celery never loads.
            from gateway.work.routing.bridge import CeleryBridge

            lag = LagRecorder(resources.redis, celery_lag_key(resources), audience)
            self.celery = CeleryBridge(
                settings,
                audience,
                self.queue,
                self.results,
                self.notifier,
                resources.stopping,
                lag,
            )
        self._reaper = PeriodicLoop(
            f"reaper:{audience}",
            self.reap_once,
            settings.reaper_interval_s,
            stopping=resources.stopping,
            audience=audience,
        )

    async def enqueue(self, tasks: Sequence[TaskIn]) -> EnqueueOutcome:
        """Enqueue tasks and count the new ones."""
        outcome = await self.queue.enqueue(tasks)
        for platform, new in zip(outcome.platforms, outcome.new, strict=True):
            if new:
                self.metrics.enqueued.labels(platform).inc()
        return outcome

    async def lease(
        self, holder: LeaseHolder, platforms: Sequence[str], limit: int, wait_s: float
    ) -> LeaseBatch:
        """Lease work, holding the call up to `wait_s` until some is ready (long-poll)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        stopping = self.resources.stopping
        while True:
            with self.notifier.waiter(platforms) as woken:
                batch = await self.queue.lease(holder, platforms, limit)
                handed = await self.results.drop_done(batch.tasks)
                if len(handed) < len(batch.tasks):
                    # Reclaimed tasks already committed were released, not handed out;
                    # if that emptied the batch, more may be ready right now.
                    batch = dataclasses.replace(batch, tasks=handed)
                    if not handed:
                        continue
                remaining = deadline - loop.time()
                if batch.command != "run":
                    # Hold a quiet/terminated worker's poll for its `wait`, so one that
                    # ignores its heartbeat command cannot spin on /internal/work.
                    await wait_any([stopping], remaining)
                    break
                if batch.tasks or remaining <= 0 or stopping.is_set():
                    break
                timeout = min(remaining, SAFETY_RECHECK_S)
                if batch.next_due_in_s is not None:
                    timeout = min(timeout, batch.next_due_in_s + 0.01)
                await wait_any([woken, stopping], timeout)
        for task in batch.tasks:
            self.metrics.leased.labels(task.platform).inc()
            if task.attempt == 1:
                self.metrics.routed.labels(task.platform, "native").inc()
        return batch

    async def reap_once(self) -> None:
        """One reaper pass: reclaim expired leases, expire workers, refresh gauges."""
        reaped = await self.queue.reap()
        for count in reaped.counts:
            self.metrics.lease_expirations.labels(count.platform).inc(count.count)
            if count.kind == "retry":
                self.metrics.retries.labels(count.platform).inc(count.count)
            elif count.kind == "dead":
                self.metrics.dead_lettered.labels(count.platform).inc(count.count)
            # `cancelled`: deleted, nobody waited; counted as an expiry only.
        # Logged, never raised: a failing hook must not stop the reaper.
        await self.results.hook_calls.dead(reaped.dead)
        now_s, now_us = await self.resources.redis.time()
        await self.registry.expire(self.settings.worker_expiry_s, now_s * 1000 + now_us // 1000)
        stats = await queue_stats(self.queue, self.settings.worker_expiry_s)
        self.metrics.platforms_seen(stats.oldest_ready_age_s)
        publish(self.metrics, stats)
        if isinstance(self.queue.lanes, AudienceLanes):
            await self._publish_shares(self.queue.lanes.router)

    async def _publish_shares(self, router: CeleryRouter) -> None:
        """The configured and in-force share of each of this audience's routes."""
        shares = await router.shares.current()
        for route in router.routes.values():
            if route.audience != self.audience:
                continue
            gauge = self.metrics.celery_share
            kind = route.kind or "*"
            gauge.labels(route.platform, kind, "configured").set(route.share)
            gauge.labels(route.platform, kind, "in_force").set(router.share_of(route, shares))

    async def start(self) -> None:
        """Start the wake subscriber, the reaper and the Celery side (if routed)."""
        self.notifier.start()
        self._reaper.start()
        if self.celery is not None:
            await self.celery.start()

    async def stop(self) -> None:
        """Stop background tasks; pending long-polls answer at once."""
        if self.celery is not None:
            await self.celery.stop()
        await self._reaper.stop()
        await self.notifier.stop()
        await self.tokens.close()
