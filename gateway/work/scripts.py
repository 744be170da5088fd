"""The worker plane's Redis Lua scripts, loaded once per Redis client.

Every state change of a task happens inside one script, so Redis' single-threaded
execution is the lock: a task is popped by exactly one lease call, a lease is reclaimed by
exactly one reaper run even with several gateway replicas, and a result is checked against
the current lease in the same step that releases it. `common.lua` is prepended to each
script (Lua has no `require` inside Redis).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from gateway.kit.lua import register_scripts

_NAMES = (
    "enqueue",
    "attach",
    "release",
    "lease",
    "check",
    "complete",
    "fail",
    "reap",
    "heartbeat",
    "dlq_requeue",
    "dlq_purge",
    "drain",
)


@dataclass(frozen=True)
class Scripts:
    """Registered scripts; calling one uses EVALSHA and falls back to EVAL once."""

    enqueue: AsyncScript
    attach: AsyncScript
    release: AsyncScript
    lease: AsyncScript
    check: AsyncScript
    complete: AsyncScript
    fail: AsyncScript
    reap: AsyncScript
    heartbeat: AsyncScript
    dlq_requeue: AsyncScript
    dlq_purge: AsyncScript
    drain: AsyncScript


def load_scripts(redis: Redis) -> Scripts:
    """Register every script on `redis` (no round trip until first use)."""
    return Scripts(**register_scripts(redis, "gateway.work", _NAMES, prelude="common"))
