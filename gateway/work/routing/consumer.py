"""Results from Celery: a durable results queue the gateway consumes with kombu.

Why a queue and not a Celery result backend: a backend is a key-value store keyed by
Celery task id, so the gateway would have to poll every outstanding task (or hold a
subscription per task), and a result that nobody polls for expires unseen. A queue
pushes each result to whichever replica is free, survives a replica's death (an unacked
message goes back to the queue), and needs nothing on the Celery side but the task's
return value: Celery itself publishes it to the queue through the `link` callback the
gateway attached when it sent the task (`messages.py`).

Messages are handed, in batches (one `submit` per batch of up to `RESULTS_BATCH`: one
PostgreSQL transaction, as for a HTTP worker's post), to the existing results path
(`ResultService.submit`, as the holder `CELERY_HOLDER`): validation, the PostgreSQL
commit with history, job progress, events and webhooks; failures go to attempts, backoff
and dead letters. A message is acknowledged only after the `submit` of its batch
returned, so a replica that dies mid-commit leaves it to be redelivered; a redelivered
(or twice-sent) result finds its task done and answers `duplicate`, and writes nothing
(the `<audience>_tasks_done` row decides). When PostgreSQL or Redis is down the batch is
put back after `RETRY_PAUSE_S`. A result that fails validation becomes a retryable
failure of its lease ("invalid result ..."), so a broken Celery task ends in the dead
letters with the reason, not in silence.

kombu is blocking: the consumer runs in its own thread and runs each batch's handling on
the event loop (`run_coroutine_threadsafe`), at most `CELERY_RESULTS_PREFETCH` messages
unacknowledged at a time. A redelivered message in the same batch as its first delivery
is answered `duplicate` by `submit` (one (task, lease) per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from typing import Any

import structlog
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.message import Message

from gateway.core.errors import ServiceUnavailable
from gateway.work.models import ResultOutcome
from gateway.work.results import ResultService
from gateway.work.routing.lag import LagRecorder
from gateway.work.routing.messages import (
    CELERY_HOLDER,
    ERROR_TASK,
    PUBLISHED_AT,
    RAISED,
    RESULT_TASK,
    failure_item,
    result_item,
    split_celery_task_id,
)

log = structlog.get_logger("gateway.work.routing")

RETRY_PAUSE_S = 1.0
_DRAIN_S = 0.5
# Results are submitted in batches of up to `RESULTS_BATCH` (bounded by the prefetch):
# collected until the broker is quiet for `_GAP_S`, the batch is full, or the oldest
# has waited `_HOLD_S`.
RESULTS_BATCH = 100
_GAP_S = 0.005
_HOLD_S = 0.05
_RECONNECT_S = 1.0


def results_queue(name: str) -> Queue:
    """The durable results queue `name` (direct exchange and routing key of the same
    name: what Celery declares for `queue=name`)."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name, durable=True)


class ResultConsumer:
    """Consumes one audience's results queue into its `ResultService`."""

    def __init__(
        self,
        results: ResultService,
        broker_url: str,
        transport_options: dict[str, Any],
        queue_name: str,
        prefetch: int,
        lag: LagRecorder | None = None,
    ) -> None:
        self.results = results
        self.lag = lag
        self.broker_url = broker_url
        self.transport_options = transport_options
        self.queue = results_queue(queue_name)
        self.prefetch = prefetch
        self.batch = min(prefetch, RESULTS_BATCH)
        self._pending: list[tuple[Any, Message]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ready = threading.Event()

    def _item(self, body: Any, headers: dict[str, Any]) -> dict[str, Any] | None:
        """The results item of one callback message; None when it is not one of ours."""
        name = headers.get("task")
        ids = split_celery_task_id(headers.get("parent_id"))
        args = body[0] if isinstance(body, list | tuple) and body else []
        if ids is None and name == ERROR_TASK and args:
            ids = split_celery_task_id(args[0])
        if ids is None or name not in (RESULT_TASK, ERROR_TASK):
            log.warning("celery_result_unknown", task=str(name)[:100])
            return None
        task_id, lease_id = ids
        if name == ERROR_TASK:
            return failure_item(task_id, lease_id, RAISED, True)
        return result_item(task_id, lease_id, args[0] if args else None)

    async def handle(self, messages: Sequence[tuple[Any, dict[str, Any]]]) -> list[ResultOutcome]:
        """Submit the results of a batch of callback messages in one `submit` (one
        PostgreSQL transaction); messages that are not ours are skipped."""
        parsed = [(body, self._item(body, headers)) for body, headers in messages]
        items = [item for _, item in parsed if item is not None]
        if not items:
            return []
        outcomes = await self.results.submit(CELERY_HOLDER, items)
        invalid = [
            (item, o) for item, o in zip(items, outcomes, strict=True) if o.reason == "invalid"
        ]
        if invalid:
            failures = []
            for item, o in invalid:
                errors = o.errors or []
                fields = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors
                )
                log.warning("celery_result_invalid", task_id=item["task_id"], errors=len(errors))
                message = f"invalid result from Celery: {fields}"
                failures.append(failure_item(item["task_id"], item["lease_id"], message, True))
            outcomes += await self.results.submit(CELERY_HOLDER, failures)
        for body, parsed_item in parsed:  # once submitted: a batch put back counts once
            if parsed_item is not None:
                await self._observe_lag(body)
        return outcomes

    async def _observe_lag(self, body: Any) -> None:
        # [args, kwargs, embed]: the callbacks' kwargs carry the publish time.
        kwargs = body[1] if isinstance(body, list | tuple) and len(body) > 1 else None
        published = kwargs.get(PUBLISHED_AT) if isinstance(kwargs, dict) else None
        if isinstance(published, int | float) and not isinstance(published, bool):
            lag = time.time() - published
            if 0 <= lag < 7 * 86_400:  # a clock far off says nothing about lag
                self.results.metrics.celery_results_lag.observe(lag)
                if self.lag is not None:
                    with contextlib.suppress(Exception):  # status detail, never a failure
                        await self.lag.record(lag)

    def _on_message(self, body: Any, message: Message) -> None:
        # Collected; `_flush` submits them together (see `_consume`).
        self._pending.append((body, message))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        assert self._loop is not None
        entries = [(body, dict(m.headers or {})) for body, m in pending]
        future = asyncio.run_coroutine_threadsafe(self.handle(entries), self._loop)
        try:
            future.result()
        except Exception as exc:
            # PostgreSQL or Redis down (ServiceUnavailable), or anything else: nothing
            # was released; the whole batch goes back and is tried again.
            if not isinstance(exc, ServiceUnavailable):
                log.error("celery_result_failed", error=type(exc).__name__)
            self._stop.wait(RETRY_PAUSE_S)
            for _, message in pending:
                message.requeue()
            return
        for _, message in pending:
            message.ack()

    def _consume(self) -> None:
        while not self._stop.is_set():
            try:
                with (
                    Connection(
                        self.broker_url, transport_options=self.transport_options, connect_timeout=2
                    ) as conn,
                    conn.Consumer(
                        [self.queue],
                        callbacks=[self._on_message],
                        accept=["json"],
                        prefetch_count=self.prefetch,
                    ),
                ):
                    self.ready.set()
                    first_at = 0.0
                    while not self._stop.is_set():
                        quiet = False
                        try:
                            conn.drain_events(timeout=_GAP_S if self._pending else _DRAIN_S)
                        except TimeoutError:
                            quiet = True
                        if not self._pending:
                            continue
                        now = time.monotonic()
                        first_at = first_at or now
                        if quiet or len(self._pending) >= self.batch or now - first_at >= _HOLD_S:
                            self._flush()
                            first_at = 0.0
            except Exception as exc:  # a lost broker must not end consuming
                self.ready.clear()
                # Unacknowledged messages go back with the connection; forget them here.
                self._pending = []
                log.warning("celery_results_connection_lost", error=type(exc).__name__)
                self._stop.wait(_RECONNECT_S)

    def start(self) -> None:
        """Start consuming in a thread of its own."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._consume, name=f"celery-results:{self.results.audience}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        """Stop consuming (the message in hand is finished first)."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None


def check_broker(url: str, transport_options: dict[str, Any], timeout_s: float = 3.0) -> None:
    """Connect to the broker once; raises what kombu raises when it does not answer."""
    with Connection(url, transport_options=transport_options, connect_timeout=timeout_s) as conn:
        conn.ensure_connection(max_retries=1)
