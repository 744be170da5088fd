"""Automatic pipelining of one Lua script's calls: one Redis round trip per event-loop turn.

Every public request runs the limiter script once. Under load many requests reach that
call in the same turn of the event loop, and each separate round trip costs the gateway
far more CPU (a socket write, a read wake-up, redis-py's per-command machinery) than the
script costs Redis. So the first caller of a turn becomes the *leader*: it yields once,
letting the other requests of that turn queue their calls, then sends them all as one
non-transactional pipeline of `EVALSHA`s and hands each caller its own reply.

Exactness is unchanged: Redis still runs every script atomically and in order, a
pipeline only saves round trips. A lone request pays one extra loop turn (no batch to
wait for). If the leader's round trip fails or is cancelled (its caller's timeout),
every follower of that batch gets the error and takes its own fallback path, as it
would have after its own failed call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

Call = tuple[Sequence[str], Sequence[Any]]


class ScriptBatcher:
    """Runs one registered script, pipelining the calls made in the same loop turn."""

    def __init__(self, redis: Redis, script: str) -> None:
        self._redis = redis
        self._script = redis.register_script(script)
        self._queue: list[tuple[Call, asyncio.Future[Any]]] | None = None

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's reply for these keys and arguments."""
        if self._queue is not None:  # a leader is collecting this turn's calls
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._queue.append(((keys, args), future))
            return await future
        queue: list[tuple[Call, asyncio.Future[Any]]] = []
        self._queue = queue
        try:
            try:
                await asyncio.sleep(0)
            finally:
                self._queue = None
            if not queue:
                return await self._script(keys=keys, args=args)
            replies = await self._run([(keys, args), *(call for call, _ in queue)])
        except BaseException as exc:
            # Followers see a Redis error (not a cancellation they did not ask for).
            error = exc if isinstance(exc, Exception) else RedisError("batch cancelled")
            for _, future in queue:
                if not future.done():
                    future.set_exception(error)
            raise
        for (_, future), reply in zip(queue, replies[1:], strict=True):
            if future.done():  # its caller gave up (timeout)
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
        if isinstance(replies[0], Exception):
            raise replies[0]
        return replies[0]

    async def _run(self, calls: list[Call]) -> list[Any]:
        pipe = self._redis.pipeline(transaction=False)
        for keys, args in calls:
            pipe.evalsha(self._script.sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        if any(isinstance(r, NoScriptError) for r in replies):
            # Redis lost its script cache (restart, SCRIPT FLUSH): load it and redo
            # only the calls that did not run.
            for i, reply in enumerate(replies):
                if isinstance(reply, NoScriptError):
                    keys, args = calls[i]
                    replies[i] = await self._script(keys=keys, args=args)
        return replies
