"""SingleFlight: one call per key at a time, its outcome shared."""

from __future__ import annotations

import asyncio

import pytest

from gateway.kit.single_flight import SingleFlight


async def test_concurrent_callers_share_one_call_and_later_callers_call_again() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def call() -> int:
        nonlocal calls
        calls += 1
        mine = calls
        await release.wait()
        return mine

    waiting = [asyncio.create_task(flight.run("k", call)) for _ in range(20)]
    other = asyncio.create_task(flight.run("other", call))
    await asyncio.sleep(0)
    assert len(flight) == 2
    release.set()
    assert await asyncio.gather(*waiting) == [1] * 20  # all got the one call's result
    assert await other == 2
    assert calls == 2  # one per key
    assert len(flight) == 0
    assert await flight.run("k", call) == 3  # nothing in flight: a new call


async def test_the_leaders_exception_reaches_every_follower() -> None:
    flight: SingleFlight[str, int] = SingleFlight()

    async def fail() -> int:
        await asyncio.sleep(0.01)
        raise LookupError("down")

    results = await asyncio.gather(
        *(flight.run("k", fail) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)


async def test_a_cancelled_leader_does_not_cancel_its_followers() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    started = 0
    release = asyncio.Event()  # calls end when the test says, not after a delay

    async def call() -> str:
        nonlocal started
        started += 1
        await release.wait()
        return f"call {started}"

    leader = asyncio.create_task(flight.run("k", call))
    await asyncio.sleep(0)  # one loop step: the leader is inside its call
    follower = asyncio.create_task(flight.run("k", call))
    await asyncio.sleep(0)  # the follower awaits the leader
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    release.set()
    assert await follower == "call 2"  # it led the retry itself


async def test_a_cancelled_follower_leaves_the_leader_running() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    release = asyncio.Event()

    async def call() -> str:
        await release.wait()
        return "done"

    leader = asyncio.create_task(flight.run("k", call))
    await asyncio.sleep(0)  # one loop step: the leader is inside its call
    follower = asyncio.create_task(flight.run("k", call))
    await asyncio.sleep(0)  # the follower awaits the leader
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    release.set()
    assert await leader == "done"
