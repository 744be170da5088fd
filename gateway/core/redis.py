"""The process's one Redis connection pool (redis-py asyncio), and its retry policy.

After Redis restarts (or a partition heals), pooled connections can be stale: the
first command on each fails with a connection error although Redis is back, and the
request that drew it answers 503. So a connection error is retried once, on the same
pool slot reconnected (a fresh socket), **only when repeating the call cannot change
the outcome**:

- plain commands in `IDEMPOTENT_COMMANDS`: reads, and writes that set an absolute value
  (`SET` without `NX`/`XX`/`GET`, `HSET`, `DEL`, `ZADD` without `INCR`, `EXPIRE`...);
- anything run inside `idempotent()`: pipelines of reads, or a script whose effect is
  idempotent, declared so at its call site.

Everything else fails at once, as before: `INCR`, `LPUSH`, `PUBLISH`, transactions,
and every Lua script (`EVALSHA`) by default. A connection error after the command was
written does not say whether Redis ran it; repeating a lease or a rate-limit script
whose reply was lost would lease twice or count twice. (The fast-path batcher,
`gateway/fastpath/redis_batch.py`, bypasses redis-py's command path and never retries.)

Timeouts are never retried: a server that did not answer in `socket_timeout` will not
answer faster the second time, and retrying would double the wait.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")

# Reads, and writes whose second application leaves the same state and reply.
IDEMPOTENT_COMMANDS = frozenset(
    {
        # server and connection
        "PING", "TIME", "INFO", "CONFIG GET", "DBSIZE", "SCRIPT EXISTS", "SCRIPT LOAD",
        # reads
        "GET", "MGET", "EXISTS", "TTL", "PTTL", "TYPE", "SCAN", "STRLEN",
        "HGET", "HMGET", "HGETALL", "HEXISTS", "HLEN", "HKEYS", "HVALS", "HSCAN",
        "SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD", "SSCAN",
        "ZCARD", "ZCOUNT", "ZRANGE", "ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE",
        "ZSCORE", "ZMSCORE", "ZRANK", "ZREVRANK", "ZSCAN",
        "LLEN", "LRANGE", "LINDEX", "XLEN", "XRANGE", "XREVRANGE",
        # absolute writes (same state and same reply when repeated)
        "DEL", "UNLINK", "EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST",
        "HSET", "HMSET", "HDEL", "SADD", "SREM", "ZREM", "MSET",
    }
)  # fmt: skip
# `SET`/`ZADD` are idempotent unless an option makes the reply depend on prior state.
_CONDITIONAL = {
    "SET": {b"NX", b"XX", b"GET"},
    "ZADD": {b"NX", b"XX", b"GT", b"LT", b"INCR", b"CH"},
}

_retry_allowed: ContextVar[bool] = ContextVar("redis_retry_allowed", default=False)


@contextlib.contextmanager
def idempotent() -> Iterator[None]:
    """Mark the Redis calls inside as safe to repeat once after a connection error.

    A context variable: tasks created inside the block inherit the mark, so keep the
    block around the calls themselves.
    """
    token = _retry_allowed.set(True)
    try:
        yield
    finally:
        _retry_allowed.reset(token)


def is_idempotent(args: tuple[Any, ...]) -> bool:
    """Whether a command (as passed to `execute_command`) may be repeated safely."""
    if not args:
        return False
    name = _text(args[0]).upper()
    if name in _CONDITIONAL:
        options = {_text(a).upper().encode() for a in args[1:] if isinstance(a, str | bytes)}
        return not options & _CONDITIONAL[name]
    return name in IDEMPOTENT_COMMANDS


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class OnceIfIdempotent(Retry):
    """redis-py's per-connection retry: one retry, on connection errors, when allowed.

    Timeouts stay in the supported errors so that redis-py still disconnects the
    connection on them (a late reply must never reach the next user of the socket);
    they are re-raised without a retry.
    """

    def __init__(self) -> None:
        super().__init__(NoBackoff(), 1, (RedisConnectionError, RedisTimeoutError))

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[[Exception], Any] | Callable[[Exception, int], Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        """Run `do`; after a connection error, reconnect and run it once more if allowed."""
        failures = 0
        while True:
            try:
                return await do()
            except (RedisConnectionError, RedisTimeoutError) as error:
                failures += 1
                # `fail` disconnects the connection: the retry runs on a fresh socket.
                if with_failure_count:
                    await fail(error, failures)  # type: ignore[call-arg]
                else:
                    await fail(error)  # type: ignore[call-arg]
                retry = (
                    failures <= 1
                    and isinstance(error, RedisConnectionError)
                    and _retry_allowed.get()
                    and (is_retryable is None or is_retryable(error))
                )
                if not retry:
                    raise


class GatewayRedis(Redis):
    """A client that marks idempotent commands as retryable (see the module docstring)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run one command; a connection error is retried once if it is idempotent."""
        # redis-py leaves execute_command unannotated.
        if _retry_allowed.get() or not is_idempotent(args):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        with idempotent():
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def create_redis(url: str, *, max_connections: int) -> Redis:
    """A client on a blocking pool: under load callers wait briefly for a connection
    instead of failing with "Too many connections"."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5,
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=15,
        decode_responses=False,
        retry=OnceIfIdempotent(),
    )
    # from_pool hands ownership to the client, so `aclose()` also disconnects the pool.
    return GatewayRedis.from_pool(pool)
