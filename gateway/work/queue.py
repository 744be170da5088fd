"""The leased-work queue of one audience, in Redis.

Design (Faktory/BullMQ/SQS ideas, one Lua script per state change, see `scripts.py`)::

    enqueue ──▶ ready:<p> ──lease──▶ leased:<p> ──result ok──▶ (deleted: history in PG)
       │          ▲  ▲                   │  │
       │          │  └──promote─ delayed:<p> ◀── failed retryable / lease expired (reaper)
       └─not_before─┘                    └────▶ dead:<p> (max attempts / not retryable)

* A task is a hash `t:<task_id>`; per platform, `ready` is ordered by (priority, FIFO),
  `delayed` by due time, `leased` by lease expiry, `dead` by death time; `since` keeps
  when each ready task became ready (for the oldest-ready-age gauge). The FIFO number is
  drawn once, when the task first becomes ready, and kept in the hash (`seq`): a task
  that comes back (reclaimed, retried, requeued from the dead letters) keeps its place.
* Every lease gets a fresh random `lease_id`. Only the current lease of a task can
  complete or fail it, so a worker that lost its lease (expired, reaped, re-leased) gets
  `stale_lease` and changes nothing; a lease that already completed answers `duplicate`
  (from PostgreSQL history for succeeded results, from the task hash for failures).
* A lease belongs to its holder: the token that leased it (its id) and the worker id,
  both written into the task hash by `lease.lua`. A lease id is not a capability: a
  result, failure or heartbeat from any other (token, worker id) is `not_holder` and
  changes nothing. The same token and worker id after a restart is the same holder.
* A lease batch holds at most `LEASE_MAX_BATCH_BYTES` (estimated in `lease.lua`; the
  first task always goes out), so `limit` is a maximum the gateway may lower.
* `dedupe` maps `<platform>:<key>` to the live task while it is ready, delayed or leased,
  so a unit of work is never queued twice; completion and dead-lettering free the key.
* Times are Redis' clock (`TIME` inside the scripts), so several gateway replicas agree.
"""

from __future__ import annotations

import json
import random
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from gateway.core.settings.work import WorkerPlaneSettings
from gateway.kit.outage import redis_guard
from gateway.work.holder import LeaseHolder
from gateway.work.models import Command, LeasedTask, TaskIn, parse_command
from gateway.work.scripts import Scripts

REAP_BATCH = 1000


def _s(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def ms_to_datetime(ms: int | float) -> datetime:
    """A Redis-clock millisecond timestamp as an aware datetime."""
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


@dataclass(frozen=True)
class EnqueueOutcome:
    """Per input task: its id (the live one for a duplicate) and whether it was new."""

    task_ids: list[str]
    new: list[bool]
    platforms: list[str]


@dataclass(frozen=True)
class LeaseBatch:
    """One lease attempt: tasks, the worker's command, and when delayed work is due."""

    tasks: list[LeasedTask]
    command: Command
    next_due_in_s: float | None


@dataclass(frozen=True)
class Settled:
    """The outcome of a lease check, completion or failure for one (task, lease)."""

    status: str  # current|ok|retry|dead|duplicate|stale|not_holder
    platform: str


@dataclass(frozen=True)
class FailureIn:
    """A worker-reported failure of one lease."""

    task_id: str
    lease_id: str
    message: str
    retryable: bool


@dataclass(frozen=True)
class ReapCount:
    """Expired leases of one platform requeued (`retry`) or dead-lettered (`dead`)."""

    platform: str
    kind: str
    count: int


class WorkQueue:
    """Enqueue, lease, settle and reap tasks of one audience."""

    def __init__(
        self, redis: Redis, scripts: Scripts, base: str, settings: WorkerPlaneSettings
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.base = base
        self.settings = settings

    def key(self, *parts: str) -> str:
        """A key of this audience's queue."""
        return self.base + ":".join(parts)

    @property
    def wake_channel(self) -> str:
        """Pub/sub channel announcing platforms that just got ready work."""
        return self.key("wake")

    def lease_args(self) -> list[str]:
        """Default lease timeout (ms) and per-platform overrides, as script arguments."""
        overrides = {p: int(s * 1000) for p, s in self.settings.lease_timeout_overrides_s.items()}
        return [str(int(self.settings.lease_timeout_s * 1000)), json.dumps(overrides)]

    async def enqueue(self, tasks: Sequence[TaskIn]) -> EnqueueOutcome:
        """Add tasks; a (platform, key) already ready, delayed or leased is a duplicate."""
        args: list[str] = [self.base, str(len(tasks))]
        for task in tasks:
            not_before = (
                "" if task.not_before is None else str(int(task.not_before.timestamp() * 1000))
            )
            args += [
                uuid.uuid4().hex,
                task.platform,
                task.key,
                json.dumps(task.payload, separators=(",", ":")),
                str(task.priority),
                not_before,
            ]
        with redis_guard():
            raw = await self.scripts.enqueue(args=args)
        ids = [_s(raw[i]) for i in range(0, len(raw), 2)]
        new = [int(raw[i]) == 1 for i in range(1, len(raw), 2)]
        return EnqueueOutcome(ids, new, [t.platform for t in tasks])

    async def lease(self, holder: LeaseHolder, platforms: Sequence[str], limit: int) -> LeaseBatch:
        """Lease up to `limit` ready tasks (fewer if they exceed the batch byte budget),
        round-robin over `platforms`, in one step, bound to `holder`."""
        lease_ids = [secrets.token_urlsafe(18) for _ in range(limit)]
        args = [
            self.base,
            *holder.args(),
            str(limit),
            str(self.settings.lease_max_batch_bytes),
            *self.lease_args(),
            str(len(platforms)),
            *platforms,
            *lease_ids,
        ]
        with redis_guard():
            raw = await self.scripts.lease(args=args)
        now_ms, next_due, command = int(raw[0]), int(raw[1]), _s(raw[2])
        tasks = [
            LeasedTask(
                task_id=_s(raw[i]),
                lease_id=_s(raw[i + 1]),
                platform=_s(raw[i + 2]),
                key=_s(raw[i + 3]),
                payload=json.loads(raw[i + 4]),
                attempt=int(raw[i + 5]),
                lease_expires_at=ms_to_datetime(int(raw[i + 6])),
            )
            for i in range(3, len(raw), 7)
        ]
        due_in = None if next_due < 0 else max(0.0, (next_due - now_ms) / 1000)
        return LeaseBatch(tasks, parse_command(command), due_in)

    async def check(self, pairs: Sequence[tuple[str, str]], holder: LeaseHolder) -> list[Settled]:
        """Whether each (task, lease) is current and `holder`'s; those are extended."""
        args = [self.base, *holder.args(), *self.lease_args(), str(len(pairs))]
        for task_id, lease_id in pairs:
            args += [task_id, lease_id]
        with redis_guard():
            raw = await self.scripts.check(args=args)
        return _settled(raw)

    async def complete(self, pairs: Sequence[tuple[str, str]]) -> list[Settled]:
        """Release committed leases: each task is done (`ok`), or `duplicate`/`stale`."""
        args = [self.base, str(len(pairs))]
        for task_id, lease_id in pairs:
            args += [task_id, lease_id]
        with redis_guard():
            raw = await self.scripts.complete(args=args)
        return _settled(raw)

    def _backoff_args(self) -> list[str]:
        return [
            str(self.settings.max_attempts),
            str(int(self.settings.retry_backoff_base_s * 1000)),
            str(int(self.settings.retry_backoff_cap_s * 1000)),
        ]

    async def fail(self, failures: Sequence[FailureIn], holder: LeaseHolder) -> list[Settled]:
        """Record `holder`'s failures: requeue with backoff (`retry`) or dead-letter."""
        args = [self.base, *holder.args(), *self._backoff_args(), str(len(failures))]
        for f in failures:
            error = {
                "message": f.message,
                "retryable": f.retryable,
                "lease_id": f.lease_id,
                "worker_id": holder.worker_id,
            }
            args += [f.task_id, f.lease_id, json.dumps(error), "1" if f.retryable else "0"]
            args.append(f"{random.random():.6f}")  # noqa: S311 - jitter, not security
        with redis_guard():
            raw = await self.scripts.fail(args=args)
        return _settled(raw)

    async def reap(self) -> list[ReapCount]:
        """Reclaim expired leases and promote due delayed tasks (any replica may call)."""
        jitters = [f"{random.random():.6f}" for _ in range(REAP_BATCH)]  # noqa: S311
        args = [self.base, *self._backoff_args(), str(REAP_BATCH), *jitters]
        with redis_guard():
            raw = await self.scripts.reap(args=args)
        return [
            ReapCount(_s(raw[i]), _s(raw[i + 1]), int(raw[i + 2])) for i in range(0, len(raw), 3)
        ]

    async def platforms(self) -> list[str]:
        """Every platform this audience has ever queued."""
        with redis_guard():
            members = await self.redis.smembers(self.key("platforms"))
        return sorted(_s(m) for m in members)

    async def task(self, task_id: str) -> dict[str, Any] | None:
        """A task's stored fields (for operators and tests), or None."""
        with redis_guard():
            fields = await self.redis.hgetall(self.key("t", task_id))
        if not fields:
            return None
        task: dict[str, Any] = {_s(k): _s(v) for k, v in fields.items()}
        task["errors"] = json.loads(task["errors"]) if task.get("errors") else []
        task["payload"] = json.loads(task.get("payload") or "{}")
        task["attempt"] = int(task.get("attempt", 0))
        return task


def _settled(raw: list[Any]) -> list[Settled]:
    return [Settled(_s(raw[i]), _s(raw[i + 1])) for i in range(0, len(raw), 2)]
