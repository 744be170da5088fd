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

Who wants a task (client jobs build on this; the plane never knows what a job is):

* A task enqueued by a producer (`enqueue`, `POST /internal/tasks`) carries `producer=1`,
  also when the producer's (platform, key) was already live: the producer wants it now.
* `attach(waiter, tasks)` is enqueue for a job: same dedupe, same fields, but each task,
  new or already live, gets the field `j:<waiter>` (set once, so attaching twice changes
  nothing) and a `waiters` count. The results path reads `waiters` in its lease check and
  calls its hook (`hooks.py`) only for tasks that have any; the release (`complete`)
  reports them again, for a job that attached in between.
* `release(waiter, task_ids)` takes the waiter off again. A task nobody wants any more (no
  waiter left, no producer) is deleted when ready or delayed; when leased it is marked
  `cancelled=1` and stays leased: its worker's next heartbeat answers `lost` (and lists it
  in `cancelled`) without extending it; a result it still posts is committed as usual
  (data is data); a failure or lease expiry deletes the task instead of retrying or
  dead-lettering it, and frees its dedupe key. A later attach or enqueue of the same
  (platform, key) clears `cancelled`: the task is wanted again. A task the Celery
  dispatcher holds is deleted with its lease instead (`revoked`), and the caller revokes
  its Celery task (`ReleaseOutcome.revoke`): a Celery worker never heartbeats.
* A dead-lettered task keeps its waiter fields; the reaper and fail path report those
  with waiters (`ReapResult.dead`, `Settled.waiters`) so the hook's `on_dead` can fail the
  jobs' items.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.asyncio import Redis

from gateway.core.settings.work import WorkerPlaneSettings
from gateway.kit.outage import redis_guard
from gateway.work.holder import LeaseHolder
from gateway.work.hooks import DeadTask
from gateway.work.models import Command, LeasedTask, TaskIn, parse_command
from gateway.work.scripts import Scripts

# Lease from the HTTP workers' ready sets, or the Celery dispatcher's (common.lua).
NATIVE_READY = "ready:"
CELERY_READY = "cready:"
REAP_BATCH = 1000
# A waiter id goes into a hash field name (`j:<waiter>`): a small alphabet, bounded.
_WAITER = re.compile(r"^[A-Za-z0-9_]{1,64}$")
RELEASE_STATUSES = ("removed", "cancelled_leased", "revoked", "kept", "unknown")


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
    """One lease attempt: tasks, the worker's command, and when delayed work is due;
    `lanes` gives each task's lane (its Celery route id, '' when native)."""

    tasks: list[LeasedTask]
    command: Command
    next_due_in_s: float | None
    lanes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Settled:
    """The outcome of a lease check, completion or failure for one (task, lease).

    `waiters` (check, complete, fail) is how many jobs wait for the task; `attempt`
    (fail) is the attempt that failed. Both are 0 where the script does not report them.
    """

    status: str  # current|ok|retry|dead|cancelled|duplicate|stale|not_holder
    platform: str
    waiters: int = 0
    attempt: int = 0


@dataclass(frozen=True)
class ReleaseOutcome:
    """Per released task id, in order: removed|cancelled_leased|revoked|kept|unknown;
    `revoke`: the Celery task ids of the `revoked` ones (their Celery tasks to revoke)."""

    statuses: list[str]
    revoke: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many tasks ended with `status`."""
        return self.statuses.count(status)

    @property
    def counts(self) -> dict[str, int]:
        """Every status with its count (0 included)."""
        return {s: self.count(s) for s in RELEASE_STATUSES}


@dataclass(frozen=True)
class Drained:
    """A lane drained: tasks moved from `cready` to native ready, and tasks (delayed,
    dead, leased) that lost the lane where they are."""

    to_native: int
    relabelled: int


@dataclass(frozen=True)
class TaskSummary:
    """A task as others see it: its state, its attempt number and its last error."""

    state: str
    attempt: int
    last_error: str | None


@dataclass(frozen=True)
class FailureIn:
    """A worker-reported failure of one lease."""

    task_id: str
    lease_id: str
    message: str
    retryable: bool


@dataclass(frozen=True)
class ReapCount:
    """Expired leases of one platform requeued, dead-lettered or deleted as cancelled."""

    platform: str
    kind: str  # retry|dead|cancelled (a cancelled lease's task is deleted, see above)
    count: int


@dataclass(frozen=True)
class ReapResult:
    """One reaper pass: counts per (platform, kind), and dead tasks jobs waited for."""

    counts: list[ReapCount]
    dead: list[DeadTask]


class LaneChooser(Protocol):
    """Decides each new task's lane (Celery routing, `gateway/work/routing/router.py`)."""

    async def lanes(self, tasks: Sequence[TaskIn], kind: str | None) -> list[str]:
        """Per task: a Celery route id, or '' for the native queue."""
        ...


class WorkQueue:
    """Enqueue, lease, settle and reap tasks of one audience.

    `lanes` (Celery routing) chooses each task's side at enqueue and attach; without it
    every task is native.
    """

    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        base: str,
        settings: WorkerPlaneSettings,
        lanes: LaneChooser | None = None,
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.base = base
        self.settings = settings
        self.lanes = lanes

    def key(self, *parts: str) -> str:
        """A key of this audience's queue."""
        return self.base + ":".join(parts)

    @property
    def wake_channel(self) -> str:
        """Pub/sub channel announcing platforms that just got ready work."""
        return self.key("wake")

    def lease_args(self, fixed_s: float | None = None) -> list[str]:
        """Default lease timeout (ms) and per-platform overrides, as script arguments;
        `fixed_s`: one timeout for every platform (the Celery dispatcher's)."""
        if fixed_s is not None:
            return [str(int(fixed_s * 1000)), "{}"]
        overrides = {p: int(s * 1000) for p, s in self.settings.lease_timeout_overrides_s.items()}
        return [str(int(self.settings.lease_timeout_s * 1000)), json.dumps(overrides)]

    async def _lanes(self, tasks: Sequence[TaskIn], kind: str | None) -> list[str]:
        if self.lanes is None:
            return [""] * len(tasks)
        return await self.lanes.lanes(tasks, kind)

    async def enqueue(self, tasks: Sequence[TaskIn]) -> EnqueueOutcome:
        """Add a producer's tasks; a (platform, key) already live is a duplicate."""
        lanes = await self._lanes(tasks, "producer")
        with redis_guard():
            raw = await self.scripts.enqueue(args=[self.base, *_task_args(tasks, None, lanes)])
        return _enqueued(raw, tasks)

    async def attach(
        self,
        waiter: str,
        tasks: Sequence[TaskIn],
        task_ids: Sequence[str] | None = None,
        kind: str | None = None,
    ) -> EnqueueOutcome:
        """Make `waiter` wait for each task, creating those not live (`new`); idempotent.

        `task_ids` are the ids new tasks get (default: fresh ones), so a caller can record
        them before the tasks exist and no result can commit before it knows the id.
        `kind` (a job kind) is what Celery routes may match on.
        """
        _check_waiter(waiter)
        lanes = await self._lanes(tasks, kind)
        with redis_guard():
            raw = await self.scripts.attach(
                args=[self.base, waiter, *_task_args(tasks, task_ids, lanes)]
            )
        return _enqueued(raw, tasks)

    async def task_summaries(self, task_ids: Sequence[str]) -> list[TaskSummary | None]:
        """State, attempt and last error of each task (None: no such task), in one round
        trip: what callers outside the worker plane may know of a task."""
        if not task_ids:
            return []
        with redis_guard():
            async with self.redis.pipeline(transaction=False) as pipe:
                for tid in task_ids:
                    pipe.hmget(self.key("t", tid), ["state", "attempt", "errors"])
                replies = await pipe.execute()
        out: list[TaskSummary | None] = []
        for state, attempt, errors in replies:
            if state is None:
                out.append(None)
                continue
            out.append(
                TaskSummary(
                    _s(state), int(attempt) if attempt is not None else 0, _last_error(errors)
                )
            )
        return out

    async def live_task_ids(self, units: Sequence[tuple[str, str]]) -> list[str | None]:
        """The live task of each (platform, key), None where there is none."""
        if not units:
            return []
        with redis_guard():
            found = await self.redis.hmget(self.key("dedupe"), [f"{p}:{k}" for p, k in units])
        return [None if t is None else _s(t) for t in found]

    async def release(self, waiter: str, task_ids: Sequence[str]) -> ReleaseOutcome:
        """Take `waiter` off these tasks; remove (or cancel if leased) those nobody wants."""
        _check_waiter(waiter)
        if not task_ids:
            return ReleaseOutcome([])
        with redis_guard():
            raw = await self.scripts.release(args=[self.base, waiter, *task_ids])
        pairs = [(_s(raw[i]), _s(raw[i + 1])) for i in range(0, len(raw), 2)]
        return ReleaseOutcome([s for s, _ in pairs], [c for _, c in pairs if c])

    async def lease(
        self,
        holder: LeaseHolder,
        platforms: Sequence[str],
        limit: int,
        *,
        ready: str = NATIVE_READY,
        lease_s: float | None = None,
    ) -> LeaseBatch:
        """Lease up to `limit` ready tasks (fewer if they exceed the batch byte budget),
        round-robin over `platforms`, in one step, bound to `holder`. `ready`: whose
        ready sets (`CELERY_READY`: the Celery dispatcher's); `lease_s`: a lease
        timeout for every platform instead of the configured ones."""
        lease_ids = [secrets.token_urlsafe(18) for _ in range(limit)]
        args = [
            self.base,
            *holder.args(),
            str(limit),
            str(self.settings.lease_max_batch_bytes),
            *self.lease_args(lease_s),
            ready,
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
            for i in range(3, len(raw), 8)
        ]
        lanes = [_s(raw[i + 7]) for i in range(3, len(raw), 8)]
        due_in = None if next_due < 0 else max(0.0, (next_due - now_ms) / 1000)
        return LeaseBatch(tasks, parse_command(command), due_in, lanes)

    async def check(self, pairs: Sequence[tuple[str, str]], holder: LeaseHolder) -> list[Settled]:
        """Whether each (task, lease) is current and `holder`'s; those are extended."""
        args = [self.base, *holder.args(), *self.lease_args(), str(len(pairs))]
        for task_id, lease_id in pairs:
            args += [task_id, lease_id]
        with redis_guard():
            raw = await self.scripts.check(args=args)
        return _settled(raw, 3)

    async def complete(self, pairs: Sequence[tuple[str, str]]) -> list[Settled]:
        """Release committed leases: each task is done (`ok`), or `duplicate`/`stale`."""
        args = [self.base, str(len(pairs))]
        for task_id, lease_id in pairs:
            args += [task_id, lease_id]
        with redis_guard():
            raw = await self.scripts.complete(args=args)
        return _settled(raw, 3)

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
        return _settled(raw, 4)

    async def reap(self) -> ReapResult:
        """Reclaim expired leases and promote due delayed tasks (any replica may call)."""
        jitters = [f"{random.random():.6f}" for _ in range(REAP_BATCH)]  # noqa: S311
        args = [self.base, *self._backoff_args(), str(REAP_BATCH), *jitters]
        with redis_guard():
            counts, dead = await self.scripts.reap(args=args)
        return ReapResult(
            counts=[
                ReapCount(_s(counts[i]), _s(counts[i + 1]), int(counts[i + 2]))
                for i in range(0, len(counts), 3)
            ],
            dead=[
                DeadTask(
                    task_id=_s(dead[i]),
                    platform=_s(dead[i + 1]),
                    error=_s(dead[i + 3]),
                    attempts=int(dead[i + 2]),
                )
                for i in range(0, len(dead), 4)
            ],
        )

    async def drain_lane(self, lane: str, chunk: int = 500) -> Drained:
        """Take the Celery lane `lane` off every live task carrying it (`drain.lua`):
        those waiting in `cready` become native ready tasks now, the rest (delayed, dead,
        leased) go native the next time they are ready."""
        to_native = relabelled = 0
        for platform in await self.platforms():
            for ready_set in (CELERY_READY, "delayed:", "dead:", "leased:"):
                offset = 0
                while True:
                    with redis_guard():
                        moved, examined = await self.scripts.drain(
                            args=[self.base, lane, platform, ready_set, offset, chunk]
                        )
                    if ready_set == CELERY_READY:
                        to_native += int(moved)
                        offset += int(examined) - int(moved)  # moved ones left the set
                    else:
                        relabelled += int(moved)
                        offset += int(examined)
                    if int(examined) < chunk:
                        break
        return Drained(to_native, relabelled)

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


def _check_waiter(waiter: str) -> None:
    if not _WAITER.fullmatch(waiter):
        raise ValueError("a waiter id is 1 to 64 letters, digits or underscores")


def _last_error(errors: bytes | str | None) -> str | None:
    """The message of the last error in a task's stored error list."""
    if not errors:
        return None
    try:
        entries = json.loads(errors)
    except ValueError:
        return None
    if not entries:
        return None
    message = entries[-1].get("message")
    return str(message) if message is not None else None


def _task_args(
    tasks: Sequence[TaskIn],
    task_ids: Sequence[str] | None = None,
    lanes: Sequence[str] | None = None,
) -> list[str]:
    """The count, then per task: its id if new (given, else fresh), its fields and its
    lane (enqueue.lua, attach.lua)."""
    ids = task_ids if task_ids is not None else [uuid.uuid4().hex for _ in tasks]
    if len(ids) != len(tasks):
        raise ValueError("one task id per task")
    chosen = lanes if lanes is not None else [""] * len(tasks)
    args = [str(len(tasks))]
    for task, task_id, lane in zip(tasks, ids, chosen, strict=True):
        not_before = "" if task.not_before is None else str(int(task.not_before.timestamp() * 1000))
        args += [
            task_id,
            task.platform,
            task.key,
            json.dumps(task.payload, separators=(",", ":")),
            str(task.priority),
            not_before,
            lane,
        ]
    return args


def _enqueued(raw: list[Any], tasks: Sequence[TaskIn]) -> EnqueueOutcome:
    ids = [_s(raw[i]) for i in range(0, len(raw), 2)]
    new = [int(raw[i]) == 1 for i in range(1, len(raw), 2)]
    return EnqueueOutcome(ids, new, [t.platform for t in tasks])


def _settled(raw: list[Any], width: int = 2) -> list[Settled]:
    """Settled items from a flat reply of `width` values each (status, platform, ...)."""
    out = []
    for i in range(0, len(raw), width):
        extra = [int(v) for v in raw[i + 2 : i + width]]
        out.append(Settled(_s(raw[i]), _s(raw[i + 1]), *extra))
    return out
