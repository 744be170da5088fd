"""The Celery side of one audience's worker plane: the dispatcher and the results
consumer, built only when `CELERY_ROUTES` routes some of this audience's tasks (this
module imports Celery and kombu; nothing imports it otherwise)."""

from __future__ import annotations

import asyncio

from gateway.core.settings import Settings
from gateway.work.notifier import Notifier
from gateway.work.queue import WorkQueue
from gateway.work.results import ResultService
from gateway.work.routing.consumer import ResultConsumer
from gateway.work.routing.dispatch import Dispatcher
from gateway.work.routing.lag import LagRecorder
from gateway.work.routing.publisher import Publisher, celery_client


class CeleryBridge:
    """Dispatcher and results consumer of one audience."""

    def __init__(
        self,
        settings: Settings,
        audience: str,
        queue: WorkQueue,
        results: ResultService,
        notifier: Notifier,
        stopping: asyncio.Event,
        lag: LagRecorder | None = None,
    ) -> None:
        assert settings.celery_broker_url is not None  # settings refuse routes without one
        options = dict(settings.celery_broker_transport_options)
        self.app = celery_client(settings.celery_broker_url, options)
        results_queue = f"{settings.celery_results_queue}.{audience}"
        routes = {r.id: r for r in settings.celery_routes if r.audience == audience}
        self.dispatcher = Dispatcher(
            queue,
            results,
            notifier,
            Publisher(self.app, audience, results_queue),
            routes,
            batch=settings.celery_dispatch_batch,
            lease_s=settings.celery_lease_timeout_s,
            stopping=stopping,
        )
        self.consumer = ResultConsumer(
            results,
            settings.celery_broker_url,
            options,
            results_queue,
            settings.celery_results_prefetch,
            lag,
        )

    async def start(self) -> None:
        """Start consuming results, then dispatching."""
        self.consumer.start()
        self.dispatcher.start()

    async def stop(self) -> None:
        """Stop dispatching, then consuming; close the Celery client's connections."""
        await self.dispatcher.stop()
        await self.consumer.stop()
        await asyncio.to_thread(self.app.close)
