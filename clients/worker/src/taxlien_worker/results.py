"""`ResultBuffer`: results are kept until the gateway acknowledged them.

A result leaves the buffer only when the gateway answered for it (accepted, duplicate or
rejected), or when its lease is reported lost (it was committed by an earlier post whose
answer never arrived, or it is stale and would be rejected). A 503 or a broken
connection keeps the batch and retries it with capped exponential backoff, honouring
`Retry-After`: the gateway releases a lease only after its result is committed, so
resending the same batch is always safe (a committed item comes back `duplicate`).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable

from taxlien_worker.http import WorkerClient
from taxlien_worker.models import GatewayUnavailable, Result, ResultOutcome

OutcomeHook = Callable[[Result, ResultOutcome], None]


class ResultBuffer:
    """Batches results, posts them, retries until acknowledged."""

    def __init__(
        self,
        client: WorkerClient,
        *,
        batch_size: int = 100,
        max_delay_s: float = 0.2,
        retry_base_s: float = 0.5,
        retry_cap_s: float = 30.0,
        on_outcome: OutcomeHook | None = None,
    ) -> None:
        self._client = client
        self._batch_size = batch_size
        self._max_delay_s = max_delay_s
        self._retry_base_s = retry_base_s
        self._retry_cap_s = retry_cap_s
        self._on_outcome = on_outcome
        self._pending: dict[str, Result] = {}
        self._added = asyncio.Event()
        self._lock = asyncio.Lock()
        self.posts = 0
        self.retries = 0
        self.post_latencies_s: list[float] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, result: Result) -> None:
        """Queue one result for posting."""
        self._pending[result.lease_id] = result
        self._added.set()

    def lease_ids(self) -> list[str]:
        """Leases whose results wait for acknowledgement (heartbeats keep them alive)."""
        return list(self._pending)

    def pending(self) -> list[Result]:
        """Results not yet acknowledged."""
        return list(self._pending.values())

    def discard(self, lease_ids: Iterable[str]) -> int:
        """Drop results of leases the gateway reported lost; returns how many."""
        dropped = 0
        for lease_id in lease_ids:
            if self._pending.pop(lease_id, None) is not None:
                dropped += 1
        return dropped

    async def post_once(self) -> int:
        """Post up to one batch; returns how many items were acknowledged.

        Raises `GatewayUnavailable` (batch kept) or `WorkerClientError` (batch kept; a
        refusal of the whole request, e.g. a revoked token, that retrying cannot fix).
        """
        async with self._lock:
            batch = list(self._pending.values())[: self._batch_size]
            if not batch:
                return 0
            started = time.perf_counter()
            outcomes = await self._client.post_results(batch)
            self.post_latencies_s.append(time.perf_counter() - started)
            self.posts += 1
            for result, outcome in zip(batch, outcomes, strict=True):
                self._pending.pop(result.lease_id, None)
                if self._on_outcome is not None:
                    self._on_outcome(result, outcome)
            return len(batch)

    async def flush(
        self, deadline_s: float | None = None, stop: asyncio.Event | None = None
    ) -> bool:
        """Post everything, retrying unavailability; False if the deadline passed (or
        `stop` was set) first. A post in progress is always allowed to finish."""
        loop = asyncio.get_running_loop()
        end = None if deadline_s is None else loop.time() + deadline_s
        failures = 0
        while self._pending:
            try:
                await self.post_once()
                failures = 0
            except GatewayUnavailable as exc:
                failures += 1
                self.retries += 1
                delay = self._backoff(failures, exc.retry_after_s)
                if end is not None and loop.time() + delay > end:
                    return False
                if stop is not None:
                    await wait_either(stop, stop, delay)
                    if stop.is_set():
                        return False
                else:
                    await asyncio.sleep(delay)
        return True

    def _backoff(self, failures: int, retry_after_s: float | None) -> float:
        delay = min(self._retry_cap_s, self._retry_base_s * 2.0 ** (failures - 1))
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self._retry_cap_s))
        return delay

    async def run(self, stop: asyncio.Event) -> None:
        """Post in the background: a full batch at once, a partial one after max_delay_s."""
        while not stop.is_set():
            if not self._pending:
                self._added.clear()
                await wait_either(self._added, stop, None)
                continue
            if len(self._pending) < self._batch_size:
                await wait_either(stop, stop, self._max_delay_s)
            await self.flush(stop=stop)


async def wait_either(a: asyncio.Event, b: asyncio.Event, within_s: float | None) -> None:
    """Wait until either event is set, or `within_s` passed."""
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
