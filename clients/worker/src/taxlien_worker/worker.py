"""`Worker`: the loop a scraper runs: lease, work, report, heartbeat.

* Leasing long-polls `/internal/work` for up to `concurrency` tasks in flight, in
  batches of at most `lease_limit`; when the gateway is unavailable it backs off.
* Each task runs `handler(task, ctx)` in its own asyncio task. A returned value is the
  succeeded result's data; `TaskFailed` reports a failure (retryable or not); any other
  exception is reported as a retryable failure.
* Results go through a `ResultBuffer`: batched, retried until acknowledged.
* A background heartbeat lists every lease still held, in flight or awaiting
  acknowledgement, so none expires while the worker is healthy. Leases reported `lost`
  are cancelled (their results would be stale). `quiet` pauses leasing until `run`;
  `terminate` cancels in-flight work, posts finished results and stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from taxlien_worker.http import WorkerClient
from taxlien_worker.models import (
    Command,
    GatewayUnavailable,
    Result,
    ResultOutcome,
    Task,
    WorkerClientError,
)
from taxlien_worker.proxy import ProxySession
from taxlien_worker.results import ResultBuffer, wait_either

log = logging.getLogger("taxlien_worker")


class TaskFailed(Exception):
    """Raise from a handler to report a failure; `retryable=False` dead-letters at once."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass
class TaskContext:
    """What a handler may use besides its task."""

    task: Task
    client: WorkerClient

    def proxy(self, *, wait_s: float = 30.0) -> ProxySession:
        """Lease a proxy for this task's platform (`async with ctx.proxy() as p:`)."""
        return ProxySession(self.client, self.task.platform, wait_s=wait_s)


Handler = Callable[[Task, TaskContext], Awaitable[Any]]


@dataclass
class WorkerStats:
    """What one run did."""

    leased: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    cancelled: int = 0
    unacknowledged: list[Result] = field(default_factory=list)
    lease_latencies_s: list[float] = field(default_factory=list)
    result_latencies_s: list[float] = field(default_factory=list)


class Worker:
    """Runs a handler over leased tasks until stopped or told to terminate."""

    def __init__(
        self,
        client: WorkerClient,
        platforms: Sequence[str],
        handler: Handler,
        *,
        concurrency: int = 10,
        lease_limit: int = 100,
        wait_s: float = 20.0,
        result_batch: int = 100,
        result_delay_s: float = 0.2,
        result_retry_base_s: float = 0.5,
        heartbeat_interval_s: float | None = None,
        version: str | None = None,
        drain_timeout_s: float = 30.0,
        flush_timeout_s: float = 60.0,
    ) -> None:
        self.client = client
        self.platforms = list(platforms)
        self.handler = handler
        self.concurrency = concurrency
        self.lease_limit = lease_limit
        self.wait_s = wait_s
        self.version = version
        self.drain_timeout_s = drain_timeout_s
        self.flush_timeout_s = flush_timeout_s
        self.stats = WorkerStats()
        self.command: Command = "run"
        self.results = ResultBuffer(
            client,
            batch_size=result_batch,
            max_delay_s=result_delay_s,
            retry_base_s=result_retry_base_s,
            on_outcome=self._outcome,
        )
        self._heartbeat_interval_s = heartbeat_interval_s
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        # Lease again when at least half a lease batch fits (or everything is done).
        self._refill_at = max(1, min(lease_limit, concurrency) // 2)
        self._stop = asyncio.Event()

    def _outcome(self, result: Result, outcome: ResultOutcome) -> None:
        key = outcome.outcome if outcome.reason is None else f"{outcome.outcome}:{outcome.reason}"
        self.stats.outcomes[key] += 1
        if outcome.outcome == "rejected":
            log.warning("result %s rejected: %s", result.task_id, outcome.reason)

    def held_lease_ids(self) -> list[str]:
        """Every lease this worker still needs: in flight or awaiting acknowledgement."""
        return [*self._inflight, *self.results.lease_ids()]

    def stop(self) -> None:
        """Ask the run loop to finish: no new leases, in-flight work completes."""
        self._stop.set()
        self._changed.set()

    async def run(self, stop: asyncio.Event | None = None) -> WorkerStats:
        """Work until `stop` is set, `stop()` is called, or the gateway says terminate.

        Stopping never abandons a request half-way: the last long-poll is awaited (its
        tasks run), in-flight work finishes (terminate cancels it), the result post in
        progress completes, and what is left is flushed for up to `flush_timeout_s`.
        """
        watcher = asyncio.create_task(self._watch(stop)) if stop is not None else None
        poster = asyncio.create_task(self.results.run(self._stop), name="results")
        beater = asyncio.create_task(self._heartbeat_loop(), name="heartbeat")
        try:
            await self._lease_loop(poster)
        finally:
            self.stop()
            await self._drain()
            await asyncio.wait([poster, beater])  # both return soon after stop; never raises
            if watcher is not None:
                watcher.cancel()
            await self.results.flush(self.flush_timeout_s)
            self.stats.unacknowledged = self.results.pending()
            self.stats.result_latencies_s = self.results.post_latencies_s
        if poster.exception() is not None:
            raise poster.exception()  # type: ignore[misc]  # checked just above
        return self.stats

    async def _watch(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.stop()

    async def _lease_loop(self, poster: asyncio.Task[None]) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while not self._stop.is_set() and self.command != "terminate" and not poster.done():
            free = self.concurrency - len(self._inflight)
            if self.command == "quiet" or free < self._refill_at:
                self._changed.clear()
                await wait_either(self._changed, self._stop, 1.0)
                continue
            started = loop.time()
            self._changed.clear()
            try:
                tasks = await self.client.lease(
                    self.platforms, min(free, self.lease_limit), self.wait_s
                )
            except GatewayUnavailable as exc:
                failures += 1
                delay = min(30.0, 0.5 * 2.0 ** (failures - 1), exc.retry_after_s or 30.0)
                await wait_either(self._stop, self._stop, delay)
                continue
            failures = 0
            if tasks:  # an empty long-poll waits by design; its duration is no latency
                self.stats.lease_latencies_s.append(loop.time() - started)
            self.stats.leased += len(tasks)
            for task in tasks:
                self._inflight[task.lease_id] = asyncio.create_task(self._execute(task))

    async def _execute(self, task: Task) -> None:
        result: Result | None = None
        try:
            data = await self.handler(task, TaskContext(task, self.client))
            result = Result.succeeded(task, data)
        except TaskFailed as exc:
            result = Result.failed(task, exc.message, retryable=exc.retryable)
        except asyncio.CancelledError:
            self.stats.cancelled += 1
        except Exception as exc:  # a handler bug must not kill the worker
            result = Result.failed(task, f"{type(exc).__name__}: {exc}"[:4000])
        finally:
            self._inflight.pop(task.lease_id, None)
            # Wake the lease loop once a worthwhile batch fits, not on every completion.
            if self.concurrency - len(self._inflight) >= self._refill_at:
                self._changed.set()
        if result is not None:
            self.results.add(result)

    async def _drain(self) -> None:
        running = list(self._inflight.values())
        if not running:
            return
        if self.command == "terminate":
            for task in running:
                task.cancel()
        _, late = await asyncio.wait(running, timeout=self.drain_timeout_s)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def _heartbeat_loop(self) -> None:
        interval = self._heartbeat_interval_s or 10.0
        while not self._stop.is_set():
            try:
                reply = await self.client.heartbeat(
                    self.platforms,
                    self.held_lease_ids(),
                    version=self.version,
                    stats={"leased": self.stats.leased, "in_flight": len(self._inflight)},
                )
            except GatewayUnavailable:
                await wait_either(self._stop, self._stop, min(interval, 5.0))
                continue
            except WorkerClientError as exc:
                log.error("heartbeat refused (%s): stopping", exc.status)
                self.command = "terminate"
                self._changed.set()
                return
            self._apply(reply.lost, reply.command)
            if self._heartbeat_interval_s is None:
                interval = reply.heartbeat_interval_s
            await wait_either(self._stop, self._stop, interval)

    def _apply(self, lost: list[str], command: Command) -> None:
        for lease_id in lost:
            running = self._inflight.get(lease_id)
            if running is not None:
                running.cancel()
                self.stats.lost += 1
        self.results.discard(lost)
        if command != self.command:
            log.info("gateway command: %s", command)
            self.command = command
            self._changed.set()
            if command == "terminate":
                for running in list(self._inflight.values()):
                    running.cancel()
