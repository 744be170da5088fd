"""The dispatcher: sends due deliveries, one attempt each, from every replica.

`Dispatcher.step` takes expired leases back (a replica died mid-send: the delivery is
sent again, same `webhook-id`, at-least-once), then claims due deliveries into `sending`
under a lease and commits, so exactly one replica sends each attempt. Each claimed
delivery is sent in a task of its own: the step never waits for a receiver, so a slow
or dead endpoint holds only its own slots. Isolation is two bounds: at most
`per_endpoint` deliveries of one endpoint in flight (counted across replicas), and at
most `max_in_flight` sends per process.

A step that leaves work behind asks for the next one as soon as there is room for it
(`on_room`, the delivery loop's wake): after a full batch (every free slot claimed, more
may be due), once `refill` slots are free again, so claims stay batches rather than one
query per finished send; after a partial batch (the rest of what is due is held by its
endpoints' in-flight caps), as soon as one of its sends ends. A step that claimed
nothing waits for a notification or the poll.

An attempt is signed (Standard Webhooks, every secret of the rotation overlap), sent by
the `WebhookSender` (SSRF guard on the address connected to, no redirects, one
deadline), and recorded in `webhook_attempts`. Outcomes are written in batches by one
writer (`kit.batcher.Batcher`): the sends that finish while a write is under way go
together in the next, as one transaction (one statement moves the deliveries still
under their lease and inserts their attempts, then one per kind of endpoint change). So
a busy process holds one pooled connection for its outcomes instead of one per send,
and a quiet one writes each outcome alone at once. A send keeps its slot until its
outcome is written. Per endpoint, a batch has the effect of its outcomes applied in
time order (`endpoint_health`):
- 2xx: `succeeded`, and the endpoint's run of failures ends;
- 410 Gone: the delivery `failed` and the endpoint is disabled at once ("gone");
- anything else (status, timeout, connection error, refused address): retried after
  `RETRY_DELAYS_S` (+-10 % jitter), `dead` after the last; the endpoint's
  `failing_since` is set on the first failure, and an endpoint failing for longer than
  WEBHOOK_DISABLE_AFTER_S is disabled ("failing").
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.core.settings import Settings
from gateway.kit.batcher import Batcher
from gateway.kit.outage import session_scope
from gateway.webhooks import signing
from gateway.webhooks.disabled import announce
from gateway.webhooks.metrics import WebhookMetrics, unexported
from gateway.webhooks.models import DeliveryState, DisabledReason
from gateway.webhooks.repository import claim, dispatch
from gateway.webhooks.repository.dispatch import Claimed, Outcome
from gateway.webhooks.sender import Attempt, WebhookSender
from gateway.webhooks.service import secrets_for_signing

log = structlog.get_logger("gateway.webhooks.dispatcher")

# Delay before attempt n+1 after attempt n failed (index n; attempt 1 is immediate):
# immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h - about 18 h in all, then `dead`.
RETRY_DELAYS_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000)
JITTER = 0.10
PER_ENDPOINT = 4
MAX_IN_FLIGHT = 64
# After a full batch the next step waits for 1/REFILL_FRACTION of the slots to be free.
REFILL_FRACTION = 4
# A lease outlives any attempt (the sender's deadline) by a margin for recording it.
LEASE_MARGIN_S = 30.0
SENDING = "sending"


def retry_delay(
    attempts: int,
    delays: Sequence[float] = RETRY_DELAYS_S,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones (None: no more)."""
    if attempts >= len(delays):
        return None
    return float(delays[attempts]) * (1 - JITTER + 2 * JITTER * rand())


def outcome_state(attempt: Attempt) -> str:
    """How an attempt ends its delivery if it is not retried (or `pending` to retry)."""
    if attempt.succeeded:
        return DeliveryState.SUCCEEDED.value
    if attempt.status == 410 and attempt.error is None:
        return DeliveryState.FAILED.value
    return DeliveryState.PENDING.value


def metric_outcome(state: str) -> str:
    """The `outcome` label of a recorded attempt from the state it left its delivery in
    (`failed` is only ever a 410's)."""
    return {
        DeliveryState.SUCCEEDED.value: "succeeded",
        DeliveryState.PENDING.value: "failed_retry",
        DeliveryState.DEAD.value: "dead",
        DeliveryState.FAILED.value: "gone",
    }[state]


class Dispatcher:
    """Claims due deliveries and sends them, a task per delivery (see the module)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        sender: WebhookSender,
        settings: Settings,
        *,
        per_endpoint: int = PER_ENDPOINT,
        max_in_flight: int = MAX_IN_FLIGHT,
        lease_s: float | None = None,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
        metrics: WebhookMetrics | None = None,
        on_room: Callable[[], None] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._sender = sender
        self._timeout_s = settings.webhook_timeout_s
        self._excerpt_bytes = settings.webhook_response_excerpt_bytes
        self._disable_after = timedelta(seconds=settings.webhook_disable_after_s)
        self._per_endpoint = per_endpoint
        self._max_in_flight = max_in_flight
        self._lease_s = lease_s if lease_s is not None else self._timeout_s + LEASE_MARGIN_S
        self._delays = tuple(retry_delays_s)
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics = metrics if metrics is not None else unexported()
        self._on_room = on_room
        # Free slots that make the next step worth it (None: the last step left nothing).
        self._room_wanted: int | None = None
        self._refill = max(1, max_in_flight // REFILL_FRACTION)
        self._recorder: Batcher[Outcome, bool] = Batcher(self._write, max_batch=max_in_flight)

    @property
    def in_flight(self) -> int:
        """Sends of this process under way."""
        return len(self._tasks)

    async def step(self) -> int:
        """Take back expired leases, claim what fits, start sending it; how many were
        claimed (the sends go on after the step returns: `drain` waits for them)."""
        self._room_wanted = None
        free = self._max_in_flight - len(self._tasks)
        claimed: list[Claimed] = []
        # One transaction: what the reap puts back is due at once, and can be claimed now.
        async with session_scope(self._sessionmaker, write=True) as session:
            reaped = await dispatch.reap(session)
            if free > 0:
                claimed = await claim.claim(
                    session, limit=free, per_endpoint=self._per_endpoint, lease_s=self._lease_s
                )
        if reaped:
            log.info("webhook_leases_expired", deliveries=len(reaped))
        if free <= 0:
            self._want_room(self._refill)
            return 0
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery), name=f"webhook-{delivery.id}")
            self._tasks.add(task)
            task.add_done_callback(self._sent)
        if claimed:
            # Full: `refill` slots must free up; partial: any send of its ending will do.
            more = self._refill if len(claimed) == free else 1
            self._want_room(free - len(claimed) + more)
        return len(claimed)

    def _want_room(self, slots: int) -> None:
        """Ask for a step once `slots` slots are free (at once if they already are)."""
        self._room_wanted = min(slots, self._max_in_flight)
        self._check_room()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._check_room()

    def _check_room(self) -> None:
        wanted = self._room_wanted
        if wanted is None or self._on_room is None:
            return
        if self._max_in_flight - len(self._tasks) >= wanted:
            self._room_wanted = None
            self._on_room()

    async def drain(self) -> None:
        """Wait for every send under way."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    async def close(self, grace_s: float) -> None:
        """Let sends under way finish for `grace_s`, then cancel the rest (their leases
        run out and another replica, or the next start, sends them again)."""
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
                log.warning("webhook_sends_cancelled", deliveries=len(pending))
        if not await self._recorder.close(grace_s):
            log.warning("webhook_outcomes_cancelled")

    async def _deliver(self, delivery: Claimed) -> None:
        try:
            now = datetime.now(UTC)
            body = json.dumps(delivery.payload, separators=(",", ":")).encode()
            headers = signing.sign(
                delivery.id, int(now.timestamp()), body, secrets_for_signing(delivery, now)
            )
            attempt = await self._sender.send(
                delivery.url,
                headers,
                body,
                timeout_s=self._timeout_s,
                excerpt_bytes=self._excerpt_bytes,
            )
            self._metrics.attempt_seconds.observe(attempt.latency_ms / 1000)
            # The slot stays taken until the outcome is written: in-flight work is bounded.
            await self._recorder.submit(self._outcome(delivery, now, attempt))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the lease runs out and the delivery is sent again
            log.warning(
                "webhook_attempt_unrecorded", delivery=delivery.id, error=type(exc).__name__
            )

    def _outcome(self, delivery: Claimed, at: datetime, attempt: Attempt) -> Outcome:
        state = outcome_state(attempt)
        next_at: datetime | None = None
        if state == DeliveryState.PENDING.value:
            delay = retry_delay(delivery.attempts + 1, self._delays)
            if delay is None:
                state = DeliveryState.DEAD.value
            else:
                next_at = datetime.now(UTC) + timedelta(seconds=delay)
        return Outcome(
            claimed=delivery,
            state=state,
            next_attempt_at=next_at,
            at=at,
            status=attempt.status,
            error=attempt.error,
            latency_ms=attempt.latency_ms,
            excerpt=attempt.excerpt,
        )

    async def _write(self, outcomes: list[Outcome]) -> list[bool]:
        """The batcher's writer: the batch in one transaction; if that fails (a deadlock
        with another writer, a row that breaks the statement), each outcome alone, so
        one bad outcome costs only itself."""
        try:
            return await self._write_batch(outcomes)
        except Exception as exc:
            if len(outcomes) == 1:
                raise
            log.warning(
                "webhook_outcomes_batch_failed", size=len(outcomes), error=type(exc).__name__
            )
        written: list[bool] = []
        for outcome in outcomes:
            try:
                written += await self._write_batch([outcome])
            except Exception as exc:
                log.warning(
                    "webhook_attempt_unrecorded",
                    delivery=outcome.claimed.id,
                    error=type(exc).__name__,
                )
                written.append(False)
        return written

    async def _write_batch(self, outcomes: list[Outcome]) -> list[bool]:
        """Record the outcomes still under their lease and apply them to their endpoints
        (healthy, failing, disabled) in one transaction; which were recorded."""
        disabled: dict[str, str] = {}
        async with session_scope(self._sessionmaker, write=True) as session:
            ids = await dispatch.finish_many(session, outcomes)
            health = endpoint_health([o for o in outcomes if o.claimed.id in ids])
            await dispatch.lock_endpoints(session, [*health.gone, *health.failing])
            await dispatch.mark_healthy_many(session, health.healthy)
            for endpoint_id in await dispatch.disable_many(
                session, health.gone, DisabledReason.GONE
            ):
                disabled[endpoint_id] = DisabledReason.GONE.value
            runs = {k: v for k, v in health.failing.items() if k not in health.gone}
            for endpoint_id in await dispatch.mark_failing_many(
                session, runs, disable_after_s=self._disable_after.total_seconds()
            ):
                disabled[endpoint_id] = DisabledReason.FAILING.value
            announced = 0
            if disabled:
                recorded = sorted((o for o in outcomes if o.claimed.id in ids), key=lambda o: o.at)
                last = {o.claimed.endpoint_id: o for o in recorded}
                announced = await announce(session, list(disabled), last)
        if announced:
            self._metrics.fanout.inc(announced)
        for outcome in outcomes:
            if outcome.claimed.id not in ids:
                log.warning("webhook_lease_lost", delivery=outcome.claimed.id)
                continue
            self._metrics.deliveries.labels(metric_outcome(outcome.state)).inc()
            log.info(
                "webhook_attempt",
                delivery=outcome.claimed.id,
                endpoint=outcome.claimed.endpoint_id,
                status=outcome.status,
                error=outcome.error,
                state=outcome.state,
                latency_ms=round(outcome.latency_ms, 1),
            )
        for endpoint_id, reason in disabled.items():
            self._metrics.disabled.labels(reason).inc()
            log.warning("webhook_endpoint_disabled", endpoint=endpoint_id, reason=reason)
        return [o.claimed.id in ids for o in outcomes]


@dataclass(frozen=True, slots=True)
class Health:
    """What a batch of recorded outcomes does to their endpoints."""

    healthy: list[str]  # a success: the run of failures (if any) ended
    failing: dict[str, tuple[datetime, datetime]]  # failures after the last success
    gone: list[str]  # a 410: disable at once


def endpoint_health(outcomes: Sequence[Outcome]) -> Health:
    """Each endpoint's net change from its outcomes in time order, as if applied one by
    one: a success ends a run of failures, the failures after the last success start
    (or continue) one from the first of them, a 410 disables."""
    by_endpoint: dict[str, list[Outcome]] = {}
    for outcome in sorted(outcomes, key=lambda o: o.at):
        by_endpoint.setdefault(outcome.claimed.endpoint_id, []).append(outcome)
    healthy: list[str] = []
    failing: dict[str, tuple[datetime, datetime]] = {}
    gone: list[str] = []
    for endpoint_id, seen in sorted(by_endpoint.items()):
        states = [o.state for o in seen]
        if DeliveryState.FAILED.value in states:
            gone.append(endpoint_id)
            continue
        succeeded = [i for i, s in enumerate(states) if s == DeliveryState.SUCCEEDED.value]
        if succeeded:
            healthy.append(endpoint_id)
        after = seen[succeeded[-1] + 1 :] if succeeded else seen
        if after:
            failing[endpoint_id] = (after[0].at, after[-1].at)
    return Health(healthy, failing, gone)
