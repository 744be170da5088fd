"""Worker registry and operator commands, kept in Redis next to the queue.

A heartbeat writes the worker's description (`workers` hash) and its last-seen time
(`seen` sorted set, Redis clock) and extends the leases it still holds (a lease whose
task was cancelled, see `queue.py`, is answered `lost` and `cancelled` instead), all in
one script; the same script reads the worker's command. Commands are a hash of worker id →
`quiet`/`terminate`/`run`, with `*` applying to every worker without its own entry;
`lease.lua` honours them too, so a quiet worker is given no new work even if it asks.
Workers whose last beat is older than `WORKER_EXPIRY_S` are dropped by the reaper.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.kit.outage import redis_guard
from gateway.work.holder import LeaseHolder
from gateway.work.models import Command, HeartbeatRequest, parse_command
from gateway.work.queue import WorkQueue, ms_to_datetime

ALL_WORKERS = "*"


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Beat:
    """What a heartbeat answered; `not_holder` is the part of `lost` held by others,
    `cancelled` the part whose task nobody wants any more (see `queue.py`)."""

    extended: list[str]
    lost: list[str]
    not_holder: list[str]
    command: Command
    cancelled: list[str] = field(default_factory=list)


class WorkerRegistry:
    """Heartbeats, the registry of live workers, and operator commands."""

    def __init__(self, queue: WorkQueue) -> None:
        self.queue = queue
        self.redis = queue.redis

    async def heartbeat(self, beat: HeartbeatRequest, holder: LeaseHolder, token_name: str) -> Beat:
        """Record the worker and extend the leases `holder` still holds (not cancelled ones)."""
        info = json.dumps(
            {
                "platforms": beat.platforms,
                "version": beat.version,
                "in_flight": len(beat.lease_ids),
                "stats": beat.stats,
                "token": token_name,
            },
            separators=(",", ":"),
        )
        args = [
            self.queue.base,
            *holder.args(),
            info,
            *self.queue.lease_args(),
            str(len(beat.lease_ids)),
            *beat.lease_ids,
        ]
        with redis_guard():
            raw = await self.queue.scripts.heartbeat(args=args)
        status = dict(zip(beat.lease_ids, (_s(v) for v in raw[1:]), strict=True))
        ids = list(dict.fromkeys(beat.lease_ids))
        return Beat(
            extended=[i for i in ids if status[i] == "extended"],
            lost=[i for i in ids if status[i] != "extended"],
            not_holder=[i for i in ids if status[i] == "not_holder"],
            command=parse_command(_s(raw[0])),
            cancelled=[i for i in ids if status[i] == "cancelled"],
        )

    async def workers(self) -> list[dict[str, Any]]:
        """Registered workers with last-seen time and effective command."""
        q = self.queue
        with redis_guard():
            seen: list[tuple[bytes, float]] = await self.redis.zrange(  # type: ignore[assignment]
                q.key("seen"), 0, -1, withscores=True
            )
            infos = await self.redis.hgetall(q.key("workers"))
            commands = await self.redis.hgetall(q.key("commands"))
        cmds = {_s(k): _s(v) for k, v in commands.items()}
        out = []
        for member, score in seen:
            worker_id = _s(member)
            raw = infos.get(member)
            info = json.loads(raw) if raw else {}
            out.append(
                {
                    "worker_id": worker_id,
                    "last_seen": ms_to_datetime(score).isoformat(),
                    "command": cmds.get(worker_id) or cmds.get(ALL_WORKERS) or "run",
                    **info,
                }
            )
        return out

    async def set_command(self, command: Command, worker_ids: Sequence[str] | None) -> None:
        """Set the command of some workers, or of all (clearing per-worker commands)."""
        key = self.queue.key("commands")
        with redis_guard():
            if worker_ids is None:
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.delete(key)
                    if command != "run":
                        pipe.hset(key, ALL_WORKERS, command)
                    await pipe.execute()
            else:
                await self.redis.hset(key, mapping=dict.fromkeys(worker_ids, command))

    async def expire(self, older_than_s: float, now_ms: int) -> int:
        """Drop workers not seen for `older_than_s`; returns how many."""
        q = self.queue
        cutoff = now_ms - int(older_than_s * 1000)
        with redis_guard():
            stale = await self.redis.zrangebyscore(q.key("seen"), "-inf", cutoff)
            if not stale:
                return 0
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zrem(q.key("seen"), *stale)
                pipe.hdel(q.key("workers"), *stale)
                await pipe.execute()
        return len(stale)
