"""Calls of one script made in the same loop turn share a round trip; replies stay per call."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from redis.exceptions import ResponseError

from gateway.core.resources import Resources
from gateway.fastpath.redis_batch import ScriptBatcher
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

# A fresh comment per test makes a script Redis has never seen: the first batch meets
# NOSCRIPT, as after a Redis restart.
_INCR = """-- {tag}
local out = {{}}
for i = 1, #KEYS do
  if ARGV[i] == 'bad' then
    out[i] = redis.error_reply('refused')
  else
    out[i] = {{redis.call('INCR', KEYS[i]), ARGV[i]}}
  end
end
return out
"""


def _script(resources: Resources, source: str, **options: Any) -> ScriptBatcher:
    return ScriptBatcher(resources.redis, source, keys_per_call=1, args_per_call=1, **options)


def _batcher(resources: Resources) -> tuple[ScriptBatcher, list[int]]:
    """A batcher that records the number of calls of each round trip it makes."""
    batcher = _script(resources, _INCR.format(tag=uuid.uuid4().hex))
    sizes: list[int] = []
    round_trip = batcher._round_trip

    async def counted(chunks: list[Any]) -> list[Any]:
        sizes.append(sum(len(chunk) for chunk in chunks))
        return await round_trip(chunks)

    batcher._round_trip = counted  # type: ignore[method-assign]
    return batcher, sizes


async def test_concurrent_calls_share_one_round_trip_and_get_their_own_replies(
    resources: Resources,
) -> None:
    batcher, sizes = _batcher(resources)
    key = resources.key("batch", "counter")
    assert (await batcher([key], ["first"]))[0] == 1  # alone: NOSCRIPT, load, one retry
    assert sizes == [1, 1]
    replies = await asyncio.gather(*(batcher([key], [f"c{i}"]) for i in range(50)))
    # Each caller got the reply of its own call, and every call ran exactly once.
    assert [r[1] for r in replies] == [f"c{i}".encode() for i in range(50)]
    assert sorted(r[0] for r in replies) == list(range(2, 52))
    assert sizes == [1, 1, 50]
    assert int(await resources.redis.get(key) or 0) == 51


async def test_a_batch_of_a_script_redis_does_not_know_yet_runs_every_call_once(
    resources: Resources,
) -> None:
    batcher, sizes = _batcher(resources)
    key = resources.key("batch", "noscript")
    replies = await asyncio.gather(*(batcher([key], [f"c{i}"]) for i in range(10)))
    assert [r[1] for r in replies] == [f"c{i}".encode() for i in range(10)]
    assert sorted(r[0] for r in replies) == list(range(1, 11))
    assert sizes == [10, 10]  # every call met NOSCRIPT, then all ran once after the load


async def test_a_lone_call_and_an_error_reply_reach_only_their_caller(
    resources: Resources,
) -> None:
    batcher, _ = _batcher(resources)
    key = resources.key("batch", "errors")
    assert (await batcher([key], ["alone"]))[0] == 1
    results = await asyncio.gather(
        *(batcher([key], ["bad" if i == 3 else "ok"]) for i in range(6)),
        return_exceptions=True,
    )
    assert isinstance(results[3], ResponseError)
    assert all(isinstance(r, list) for i, r in enumerate(results) if i != 3)
    assert int(await resources.redis.get(key) or 0) == 6


async def test_a_batch_cancelled_while_waiting_for_replies_does_not_desync_the_pool(
    resources: Resources,
) -> None:
    """A caller that gives up mid-read must not leave its replies for the next caller."""
    slow = _script(
        resources,
        "redis.call('INCR', KEYS[1]) "
        "local t = redis.call('TIME') local stop = t[1] * 1e6 + t[2] + 200000 "
        "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= stop return {'slow'}",
    )
    fast, _ = _batcher(resources)
    key = resources.key("batch", "cancelled")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await slow([key], ["x"])
    # The pool hands out connections again; none of them still has 'slow' to deliver.
    replies = await asyncio.gather(*(fast([key], [f"after{i}"]) for i in range(20)))
    assert [r[1] for r in replies] == [f"after{i}".encode() for i in range(20)]
    assert int(await resources.redis.get(key) or 0) == 21


async def test_the_batch_deadline_fails_every_call_of_a_slow_batch_with_timeout(
    resources: Resources,
) -> None:
    # Slow only when asked: the same batcher then serves a fast batch, on whichever
    # connection it keeps or takes next.
    script = (
        "if ARGV[1] == 'slow' then local t = redis.call('TIME') "
        "local stop = t[1] * 1e6 + t[2] + 150000 "
        "repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] >= stop end return ARGV"
    )
    await resources.redis.script_load(script)  # one round trip, not NOSCRIPT + retry
    batcher = _script(resources, script, timeout_s=0.05)
    assert await batcher([resources.key("batch", "x")], ["warm"]) == b"warm"
    results = await asyncio.gather(
        *(batcher([resources.key("batch", "slow")], ["slow"]) for _ in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, TimeoutError) for r in results), results
    assert batcher.round_trips == 2
    # Redis runs one script at a time: until the slow ones end, a batch times out too.
    # Wait for that by probing, and a probe that gets through gets its own reply.

    async def slow_scripts_done() -> bool:
        try:
            reply = await batcher([resources.key("batch", "x")], ["probe"])
        except TimeoutError:
            return False
        assert reply == b"probe"
        return True

    await wait_until(slow_scripts_done, what="Redis finishing the abandoned slow scripts")
    # The next batch reads its own replies, not the late ones of the abandoned batch.
    for _ in range(3):
        replies = await asyncio.gather(
            *(batcher([resources.key("batch", "x")], [f"n{i}"]) for i in range(5))
        )
        assert replies == [f"n{i}".encode() for i in range(5)]
    fresh, _ = _batcher(resources)  # and nor does a batcher taking from the pool
    replies = await asyncio.gather(
        *(fresh([resources.key("batch", "x")], [f"f{i}"]) for i in range(5))
    )
    assert [r[1] for r in replies] == [f"f{i}".encode() for i in range(5)]


async def test_the_batch_callback_counts_calls_per_batch(resources: Resources) -> None:
    seen: list[int] = []
    batcher = _script(resources, _INCR.format(tag="count"), on_batch=seen.append)
    key = resources.key("batch", "counted")
    await batcher([key], ["alone"])
    await asyncio.gather(*(batcher([key], [f"c{i}"]) for i in range(7)))
    assert seen == [1, 7]  # per batch, however many round trips a NOSCRIPT retry adds


async def test_a_batch_larger_than_one_script_call_is_split_and_every_call_runs_once(
    resources: Resources,
) -> None:
    from gateway.fastpath.redis_batch import MAX_CALLS_PER_SCRIPT

    batcher, sizes = _batcher(resources)
    key = resources.key("batch", "big")
    count = MAX_CALLS_PER_SCRIPT * 2 + 3
    replies = await asyncio.gather(*(batcher([key], [f"c{i}"]) for i in range(count)))
    assert [r[1] for r in replies] == [f"c{i}".encode() for i in range(count)]
    assert sorted(r[0] for r in replies) == list(range(1, count + 1))
    assert sizes[-1] == count  # one write for every chunk


def test_calls_must_bring_the_scripts_number_of_keys_and_arguments(
    resources: Resources,
) -> None:
    batcher = _script(resources, _INCR.format(tag="shape"))
    with pytest.raises(ValueError, match="1 keys and 1 arguments"):
        batcher.submit(["a", "b"], ["x"])
