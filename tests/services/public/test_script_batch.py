"""Calls of one script made in the same loop turn share a pipeline; replies stay per call."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from redis.exceptions import ResponseError

from gateway.resources import Resources
from gateway.services.public.script_batch import ScriptBatcher

pytestmark = pytest.mark.integration

# A fresh comment per test makes a script Redis has never seen: the first batch meets
# NOSCRIPT, as after a Redis restart.
_INCR = """-- {tag}
if ARGV[1] == 'bad' then return redis.error_reply('refused') end
return {{redis.call('INCR', KEYS[1]), ARGV[1]}}
"""


def _batcher(resources: Resources) -> tuple[ScriptBatcher, list[int]]:
    batcher = ScriptBatcher(resources.redis, _INCR.format(tag=uuid.uuid4().hex))
    sizes: list[int] = []
    pipeline = resources.redis.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute

        async def counted(raise_on_error: bool = True) -> list[Any]:
            sizes.append(len(pipe.command_stack))
            return await execute(raise_on_error=raise_on_error)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe

    resources.redis.pipeline = counting_pipeline  # type: ignore[method-assign]
    return batcher, sizes


async def test_concurrent_calls_share_one_round_trip_and_get_their_own_replies(
    resources: Resources,
) -> None:
    batcher, sizes = _batcher(resources)
    key = resources.key("batch", "counter")
    assert (await batcher([key], ["first"]))[0] == 1  # alone: no pipeline, loads the script
    replies = await asyncio.gather(*(batcher([key], [f"c{i}"]) for i in range(50)))
    # Each caller got the reply of its own call, and every call ran exactly once.
    assert [r[1] for r in replies] == [f"c{i}".encode() for i in range(50)]
    assert sorted(r[0] for r in replies) == list(range(2, 52))
    assert sizes == [50]
    assert int(await resources.redis.get(key) or 0) == 51


async def test_a_batch_of_a_script_redis_does_not_know_yet_runs_every_call_once(
    resources: Resources,
) -> None:
    batcher, sizes = _batcher(resources)
    key = resources.key("batch", "noscript")
    replies = await asyncio.gather(*(batcher([key], [f"c{i}"]) for i in range(10)))
    assert [r[1] for r in replies] == [f"c{i}".encode() for i in range(10)]
    assert sorted(r[0] for r in replies) == list(range(1, 11))
    assert sizes == [10]


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
