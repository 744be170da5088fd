"""Coalesce concurrent calls into batches written by one task.

`Batcher.submit(item)` queues the item and waits for its result; one writer task takes
everything queued (up to `max_batch`) and hands it to `write` at once. Nothing waits to
fill a batch: when the writer is idle the first item goes alone, and while a write is
under way the next items pile up and go together. So a quiet process pays no extra
latency, a busy one pays one write (one transaction, one pooled connection) per batch
instead of one per item, and never has more than one write of this kind in flight.

`write` returns one result per item, in order. If it raises, every item of that batch
gets the exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """One writer for many submitters (see the module)."""

    def __init__(
        self, write: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_batch: int
    ) -> None:
        self._write = write
        self._max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        """Items waiting for the writer."""
        return len(self._queue)

    async def submit(self, item: T) -> R:
        """Queue `item` and wait for its result (or the batch's exception)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain(), name="batcher")
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    results = await self._write([item for item, _ in batch])
                except asyncio.CancelledError:
                    # Nobody will write these: their submitters must not wait forever.
                    for _, future in batch + self._queue:
                        future.cancel()
                    self._queue.clear()
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._writer = None

    async def close(self, timeout_s: float) -> bool:
        """Let the writer finish what is queued for `timeout_s`, then cancel it (its
        submitters see the cancel); whether it finished."""
        writer = self._writer
        if writer is None:
            return True
        done, _ = await asyncio.wait([writer], timeout=timeout_s)
        if done:
            return True
        writer.cancel()
        await asyncio.wait([writer])
        return False
