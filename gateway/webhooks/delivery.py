"""The delivery loop of a replica: fan job events out, then dispatch due deliveries.

One `PeriodicLoop` step runs the fan-out (a few batches, so a backlog drains without
starving the dispatch) and one dispatcher step. Every replica runs it; the claims
(`FOR UPDATE SKIP LOCKED`) divide the work. At most every `OUTBOX_REFRESH_S` a step
also reads the outbox's backlog into the metrics.

A step runs when something may be there to do, and at the latest every
WEBHOOK_DISPATCH_INTERVAL_S (the poll, the fallback for everything else). The loop's
`wake` event is set by:
- the `OutboxListener` (`wakeup.py`): an insert into an outbox table was committed;
- the dispatcher, when a step left work behind and sends under way have since made room
  for it (`Dispatcher` `on_room`: a full batch, or endpoints at their in-flight cap);
- the step itself, when the fan-out took every batch it may take in one step.
Setting it many times before the next step starts makes one step.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.core.settings import Environment
from gateway.kit.outage import session_scope
from gateway.kit.periodic import PeriodicLoop
from gateway.webhooks.dispatcher import Dispatcher
from gateway.webhooks.fanout import FanOut
from gateway.webhooks.metrics import OUTBOX_REFRESH_S, WebhookMetrics, webhook_metrics
from gateway.webhooks.repository import outbox
from gateway.webhooks.sender import WebhookSender
from gateway.webhooks.wakeup import OutboxListener, listen_dsn

# Fan-out batches per step: a backlog drains at up to this many batches an interval.
FANOUT_BATCHES_PER_STEP = 4
# Sends under way when the process stops get this long to finish (well inside the
# process's graceful timeout); a send cut short is sent again once its lease runs out.
STOP_GRACE_S = 2.0

log = structlog.get_logger("gateway.webhooks.delivery")


class DeliveryLoop:
    """The fan-out and the dispatcher of one replica, run by one periodic loop."""

    def __init__(self, resources: Resources) -> None:
        settings = resources.settings
        self._sessionmaker = resources.sessionmaker
        self.metrics: WebhookMetrics = webhook_metrics(resources.metrics.registry(Audience.PUBLIC))
        self._backlog_read_at: float | None = None
        self.sender = WebhookSender(
            allow_private=settings.webhook_allow_private_networks,
            require_https=settings.environment is Environment.PRODUCTION,
        )
        self._enabled = settings.webhook_delivery
        self.wake = asyncio.Event()
        self.fanout = FanOut(resources.sessionmaker, metrics=self.metrics)
        self.dispatcher = Dispatcher(
            resources.sessionmaker,
            self.sender,
            settings,
            metrics=self.metrics,
            on_room=self.wake.set,
        )
        self.listener: OutboxListener | None = None
        if settings.webhook_listen:
            self.listener = OutboxListener(
                listen_dsn(resources.engine.url), self.wake.set, connected=self._listening
            )
        self._loop = PeriodicLoop(
            "webhooks-delivery",
            self.step,
            settings.webhook_dispatch_interval_s,
            stopping=resources.stopping,
            wake=self.wake,
        )

    def _listening(self, up: bool) -> None:
        self.metrics.listening.set(1 if up else 0)

    async def step(self) -> None:
        """Fan out pending job events, then claim and start sending due deliveries."""
        for _ in range(FANOUT_BATCHES_PER_STEP):
            if not await self.fanout.step():
                break
        else:  # every batch it may take found events: more may wait, step again at once
            self.wake.set()
        await self.dispatcher.step()
        now = time.monotonic()
        if self._backlog_read_at is None or now - self._backlog_read_at >= OUTBOX_REFRESH_S:
            self._backlog_read_at = now
            await self.refresh_backlog()

    async def refresh_backlog(self) -> None:
        """Read the outbox's backlog into the gauges (the value is kept on an error:
        the database outage is reported by its own metrics)."""
        try:
            async with session_scope(self._sessionmaker) as session:
                found = await outbox.backlog(session)
        except Exception as exc:
            log.warning("webhook_backlog_unread", error=type(exc).__name__)
            return
        self.metrics.outbox_pending.set(found.pending)
        self.metrics.outbox_oldest.set(found.oldest_s)
        self.metrics.rate_delayed.set(found.rate_delayed)

    @property
    def running(self) -> bool:
        """Whether this process's delivery loop runs."""
        return self._loop.running

    def start(self) -> None:
        """Start the loop and the listener that wakes it (not when WEBHOOK_DELIVERY is
        false: then this process delivers nothing, other replicas do)."""
        if not self._enabled:
            return
        self._loop.start()
        if self.listener is not None:
            self.listener.start()

    async def stop(self) -> None:
        """Stop claiming, let sends under way finish (bounded), close the client."""
        if self.listener is not None:
            await self.listener.stop()
        await self._loop.stop()
        await self.dispatcher.close(STOP_GRACE_S)
        await self.sender.aclose()
