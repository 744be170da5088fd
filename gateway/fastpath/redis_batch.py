"""Automatic batching of one Lua script's calls: one Redis round trip per event-loop turn.

Every public request runs the limiter script once. Under load many requests reach that
call in the same turn of the event loop, and each separate round trip costs the gateway
far more CPU (a socket write, a read wake-up, redis-py's per-reply machinery) than the
script costs Redis. So the first call of a turn schedules a flush (`call_soon`), every
call made before the flush runs joins the queue, and the flush runs them all in **one**
`EVALSHA`: the script receives the calls' keys and arguments concatenated, a fixed number
per call, and returns one reply per call (see `ratelimit.lua`). One command and one
reply per batch also spare Redis the per-command overhead, and the gateway a Python read
per request.

Exactness is unchanged: a script runs atomically, so the calls of a batch run one after
the other exactly as separate calls would, each seeing what the previous left. A reply
may be an error reply (`redis.error_reply`): it reaches only its caller. An error raised
by the script itself (or the batch's round trip failing) reaches every caller of that
batch, each of which takes its own fallback path, as after its own failed call. A lone
request pays one extra loop turn (no batch to wait for).

The round trip skips redis-py's command machinery: the command is packed by hiredis's C
packer and written and read on a connection of the shared pool, which the batcher keeps
for its next batch (up to `MAX_IDLE_CONNECTIONS`) instead of handing it back: checking a
connection out of redis-py's pool costs a lock, a timeout and a socket poll. Kept
connections still belong to the pool (its limit counts them; closing the pool closes
them). The price: after Redis restarts, each kept connection fails one batch (its checks
take the fallback path) before the pool reconnects it; a batch is never retried, since
a reply lost after Redis ran the script would count the budget twice. One deadline
(`timeout_s`) bounds the whole batch: a timer per call cost as much as the rest of the
batching. A batch that times out fails every call in it with `TimeoutError`; the read it
abandoned closes its connection, so a late reply can never be read by the next user of
that connection.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from typing import Any

from hiredis import pack_command
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

Call = tuple[Sequence[str], Sequence[Any]]


# Bounds one script invocation (and so how long one batch holds Redis) under a burst.
MAX_CALLS_PER_SCRIPT = 256
# Connections a batcher keeps between batches (a loaded gateway has two or three batches
# in flight): taking one from the pool costs a lock, a timeout and a socket check.
MAX_IDLE_CONNECTIONS = 4


class ScriptBatcher:
    """Runs one batch-aware Lua script for the calls made in the same loop turn."""

    def __init__(
        self,
        redis: Redis,
        script: str,
        *,
        keys_per_call: int,
        args_per_call: int,
        timeout_s: float | None = None,
        on_batch: Callable[[int], None] | None = None,
        on_replies: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self._redis = redis
        self._pool = redis.connection_pool
        self._source = script
        self._sha = redis.register_script(script).sha.encode()  # Redis names scripts by SHA1
        self._queue: list[tuple[Call, asyncio.Future[Any]]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: list[Any] = []  # pool connections kept for the next batch
        self._timeout_s = timeout_s
        self._on_batch = on_batch  # told each batch's number of calls
        # Given one script call's replies (in place), before they reach the callers.
        self._on_replies = on_replies
        self._keys_per_call = keys_per_call
        self._args_per_call = args_per_call
        self.round_trips = 0  # for tests: Redis round trips made (a NOSCRIPT retry adds one)

    def submit(self, keys: Sequence[str], args: Sequence[Any]) -> asyncio.Future[Any]:
        """A future of the script's reply for these keys and arguments.

        The first call of a loop turn schedules the flush; calls made before it runs
        join the same batch. Awaiting the future directly (no coroutine in between)
        keeps the hot path one frame shallower.
        """
        if len(keys) != self._keys_per_call or len(args) != self._args_per_call:
            raise ValueError(
                f"each call takes {self._keys_per_call} keys and {self._args_per_call} arguments"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._queue is None:
            self._queue = []
            loop.call_soon(self._flush)
        self._queue.append(((keys, args), future))
        return future

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's reply for these keys and arguments."""
        return await self.submit(keys, args)

    def _flush(self) -> None:
        queue, self._queue = self._queue or [], None
        task = asyncio.get_running_loop().create_task(self._execute(queue))
        self._tasks.add(task)  # keep a reference until done (the loop holds only a weak one)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, queue: list[tuple[Call, asyncio.Future[Any]]]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(queue))
        try:
            async with asyncio.timeout(self._timeout_s):
                replies = await self._run([call for call, _ in queue])
        except BaseException as exc:
            # Callers see a Redis error or the timeout, not a cancellation they did not ask
            # for (the loop cancels this task only when it shuts down).
            error = exc if isinstance(exc, Exception) else RedisError("batch cancelled")
            for _, future in queue:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(queue, replies, strict=True):
            if future.done():  # its caller gave up (cancelled)
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _run(self, calls: list[Call]) -> list[Any]:
        """One reply (or error) per call, in order."""
        chunks = [
            calls[i : i + MAX_CALLS_PER_SCRIPT] for i in range(0, len(calls), MAX_CALLS_PER_SCRIPT)
        ]
        replies = await self._round_trip(chunks)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # Redis lost its script cache (restart, SCRIPT FLUSH): load it and redo only
            # the chunks that did not run.
            await self._redis.script_load(self._source)
            again = await self._round_trip([chunks[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        out: list[Any] = []
        for chunk, reply in zip(chunks, replies, strict=True):
            if isinstance(reply, Exception):
                out += [reply] * len(chunk)
            elif not isinstance(reply, list) or len(reply) != len(chunk):
                out += [ResponseError("the script did not return one reply per call")] * len(chunk)
            else:
                if self._on_replies is not None:
                    self._on_replies(reply)
                out += reply
        return out

    async def _round_trip(self, chunks: list[list[Call]]) -> list[Any]:
        """Each chunk as one EVALSHA, all in one write; one reply (or error) per chunk."""
        packed = b"".join(self._pack(chunk) for chunk in chunks)
        idle = self._idle
        connection = idle.pop() if idle else await self._pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            self.round_trips += 1
            await connection.send_packed_command(packed)
            replies: list[Any] = []
            for _ in chunks:
                try:
                    # math.inf: no per-reply timeout (see the module docstring).
                    replies.append(await connection.read_response(timeout=math.inf))
                except ResponseError as error:  # that chunk's error; the rest follow
                    replies.append(error)
        except BaseException:
            # redis-py disconnected it if a read was abandoned; the pool reconnects it.
            await self._pool.release(connection)
            raise
        if len(idle) < MAX_IDLE_CONNECTIONS:
            idle.append(connection)
        else:
            await self._pool.release(connection)
        return replies

    def _pack(self, chunk: list[Call]) -> bytes:
        keys = [key for call_keys, _ in chunk for key in call_keys]
        args = [arg for _, call_args in chunk for arg in call_args]
        return pack_command((b"EVALSHA", self._sha, len(keys), *keys, *args))  # type: ignore[no-any-return]


class SingleCalls:
    """FASTPATH=off: the same `submit` as `ScriptBatcher`, one plain redis-py EVALSHA each.

    The script is batch-aware, so a call is a batch of one; redis-py loads it on a
    NOSCRIPT miss and its pool hands out a connection per call. The reply conventions
    (an error reply reaches its caller; `on_replies` sees the call's replies) are kept.
    """

    def __init__(
        self,
        redis: Redis,
        script: str,
        *,
        timeout_s: float | None = None,
        on_batch: Callable[[int], None] | None = None,
        on_replies: Callable[[list[Any]], None] | None = None,
    ) -> None:
        self._script = redis.register_script(script)
        self._timeout_s = timeout_s
        self._on_batch = on_batch
        self._on_replies = on_replies

    async def submit(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's reply for these keys and arguments."""
        if self._on_batch is not None:
            self._on_batch(1)
        async with asyncio.timeout(self._timeout_s):
            replies = list(await self._script(keys=list(keys), args=list(args)))
        if self._on_replies is not None:
            self._on_replies(replies)
        reply = replies[0]
        if isinstance(reply, ResponseError):
            raise reply
        return reply
