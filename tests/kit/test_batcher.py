"""`Batcher`: concurrent submissions share a write; results and errors reach each one."""

from __future__ import annotations

import asyncio

import pytest

from gateway.kit.batcher import Batcher


async def test_items_queued_during_a_write_go_together_in_the_next() -> None:
    writes: list[list[int]] = []
    first_started, release = asyncio.Event(), asyncio.Event()

    async def write(items: list[int]) -> list[int]:
        writes.append(items)
        if len(writes) == 1:
            first_started.set()
            await release.wait()
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(write, max_batch=3)
    first = asyncio.create_task(batcher.submit(0))
    await first_started.wait()
    rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    assert batcher.queued == 5
    release.set()
    assert await first == 0
    assert [await r for r in rest] == [10, 20, 30, 40, 50]
    # The first alone (nothing waits to fill a batch), then the rest at most 3 at a time.
    assert writes == [[0], [1, 2, 3], [4, 5]]


async def test_a_failed_write_fails_its_batch_only() -> None:
    async def write(items: list[int]) -> list[int]:
        if 2 in items:
            raise RuntimeError("database said no")
        return items

    batcher: Batcher[int, int] = Batcher(write, max_batch=1)
    ok, bad = batcher.submit(1), batcher.submit(2)
    results = await asyncio.gather(ok, bad, return_exceptions=True)
    assert results[0] == 1
    assert isinstance(results[1], RuntimeError)
    assert await batcher.submit(3) == 3  # the writer lives on


async def test_close_cancels_a_stuck_writer_and_its_submitters() -> None:
    async def write(items: list[int]) -> list[int]:
        await asyncio.Event().wait()
        return items

    batcher: Batcher[int, int] = Batcher(write, max_batch=4)
    waiting = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    assert not await batcher.close(0)
    with pytest.raises(asyncio.CancelledError):
        await waiting
