"""`PeriodicLoop`: steps repeat, failures do not kill the loop, stop waits for a step."""

from __future__ import annotations

import asyncio

from gateway.kit.periodic import PeriodicLoop, wait_any


async def test_a_failing_step_is_retried_and_stop_ends_the_loop() -> None:
    calls = 0
    third = asyncio.Event()

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls >= 3:
            third.set()
        raise RuntimeError("backend down")

    loop = PeriodicLoop("test", step, 0.0)
    loop.start()
    await asyncio.wait_for(third.wait(), 30)
    await loop.stop()
    stopped_at = calls
    await asyncio.sleep(0)
    assert calls == stopped_at
    assert loop.stopped


async def test_stop_lets_a_step_in_progress_finish() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    finished: list[bool] = []

    async def step() -> None:
        entered.set()
        await release.wait()
        finished.append(True)

    loop = PeriodicLoop("test", step, 3600.0, stop_grace_s=60.0)
    loop.start()
    await asyncio.wait_for(entered.wait(), 30)
    stopping = asyncio.create_task(loop.stop())
    await asyncio.sleep(0)
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, 30)
    assert finished == [True]


async def test_a_stuck_step_is_cancelled_after_the_grace() -> None:
    entered = asyncio.Event()
    cancelled: list[bool] = []

    async def step() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    loop = PeriodicLoop("test", step, 3600.0, stop_grace_s=0.0)
    loop.start()
    await asyncio.wait_for(entered.wait(), 30)
    await asyncio.wait_for(loop.stop(), 30)
    assert cancelled == [True]


async def test_the_process_stop_event_ends_the_loop_and_wakes_waits() -> None:
    stopping = asyncio.Event()
    ran = asyncio.Event()

    async def step() -> None:
        ran.set()

    async with PeriodicLoop("test", step, 3600.0, stopping=stopping) as loop:
        await asyncio.wait_for(ran.wait(), 30)
        stopping.set()
        assert loop.stopped
    other = asyncio.Event()
    # wait_any returns as soon as one event is set, however long the timeout.
    await asyncio.wait_for(wait_any([other, stopping], 3600.0), 30)


async def test_wakes_during_a_step_make_one_more_step() -> None:
    wake = asyncio.Event()
    started: list[asyncio.Event] = [asyncio.Event() for _ in range(3)]
    release: list[asyncio.Event] = [asyncio.Event() for _ in range(3)]
    steps = 0

    async def step() -> None:
        nonlocal steps
        steps += 1
        started[steps - 1].set()
        await release[steps - 1].wait()

    # An hour's interval: every step after the first is one a wake asked for.
    loop = PeriodicLoop("test", step, 3600.0, wake=wake)
    loop.start()
    try:
        await asyncio.wait_for(started[0].wait(), 30)
        for _ in range(100):
            wake.set()
        release[0].set()
        await asyncio.wait_for(started[1].wait(), 30)
        # The hundred wakes were cleared when the second step began: one step for all.
        assert (steps, wake.is_set()) == (2, False)
        release[1].set()
        wake.set()  # a wake while the loop waits steps at once
        await asyncio.wait_for(started[2].wait(), 30)
        assert steps == 3
        release[2].set()
    finally:
        await loop.stop()
