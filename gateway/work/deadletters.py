"""Dead-lettered tasks: list, requeue, purge (operator commands).

Dead letters stay in Redis as the task hash itself (state `dead`, the error history of
every attempt) indexed per platform by death time. Keeping them beside the live queue
lets requeue be one atomic script that also re-checks the (platform, key) dedupe: a dead
task whose key was enqueued again meanwhile is dropped instead of duplicated. Volume is
bounded by operators purging; the history of *successful* work is in PostgreSQL.

Requeue and purge are audited after they ran (Redis has no transaction to share with
the audit row): the row names the audience, the counts and the first `_AUDITED_IDS`
task ids, a bound on the row's size however many tasks one `--all` moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.audit.actions import Action
from gateway.audit.actor import Actor
from gateway.audit.service import AuditLog
from gateway.kit.outage import redis_guard
from gateway.work.queue import WorkQueue, ms_to_datetime

_CHUNK = 500
_AUDITED_IDS = 100


@dataclass(frozen=True)
class Requeued:
    """Dead letters moved back to ready, and those dropped as already re-enqueued."""

    requeued: int
    dropped: int


class DeadLetters:
    """Operator access to one audience's dead-letter sets."""

    def __init__(self, queue: WorkQueue, audit: AuditLog, audience: str) -> None:
        self.queue = queue
        self.redis = queue.redis
        self.audit = audit
        self.audience = audience

    async def _record(
        self, actor: Actor, action: Action, task_ids: Sequence[str], outcome: dict[str, int]
    ) -> None:
        summary: dict[str, Any] = {"asked": len(task_ids), **outcome}
        summary["task_ids"] = list(task_ids[:_AUDITED_IDS])
        await self.audit.record_alone(actor, action, f"dead_letters:{self.audience}", after=summary)

    async def _platforms(self, platform: str | None) -> list[str]:
        return [platform] if platform else await self.queue.platforms()

    async def ids(self, platform: str | None = None, limit: int | None = None) -> list[str]:
        """Ids of dead tasks, oldest death first."""
        out: list[str] = []
        with redis_guard():
            for p in await self._platforms(platform):
                members = await self.redis.zrange(self.queue.key("dead", p), 0, -1)
                out += [m.decode() if isinstance(m, bytes) else str(m) for m in members]
        return out if limit is None else out[:limit]

    async def list(self, platform: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Dead tasks with their attempts and error history."""
        rows = []
        for task_id in await self.ids(platform, limit):
            task = await self.queue.task(task_id)
            if task is None:
                continue
            rows.append(
                {
                    "task_id": task_id,
                    "platform": task["platform"],
                    "key": task["key"],
                    "attempt": task["attempt"],
                    "dead_at": ms_to_datetime(int(task.get("dead_at", 0))).isoformat(),
                    "errors": task["errors"],
                }
            )
        return rows

    async def requeue(self, task_ids: Sequence[str], *, actor: Actor) -> Requeued:
        """Move dead tasks back to ready with a fresh attempt budget."""
        requeued = dropped = 0
        for i in range(0, len(task_ids), _CHUNK):
            chunk = list(task_ids[i : i + _CHUNK])
            with redis_guard():
                r, d = await self.queue.scripts.dlq_requeue(args=[self.queue.base, *chunk])
            requeued += int(r)
            dropped += int(d)
        outcome = {"requeued": requeued, "dropped": dropped}
        await self._record(actor, Action.DEAD_LETTERS_REQUEUE, task_ids, outcome)
        return Requeued(requeued, dropped)

    async def purge(self, task_ids: Sequence[str], *, actor: Actor) -> int:
        """Delete dead tasks for good; returns how many."""
        purged = 0
        for i in range(0, len(task_ids), _CHUNK):
            chunk = list(task_ids[i : i + _CHUNK])
            with redis_guard():
                purged += int(await self.queue.scripts.dlq_purge(args=[self.queue.base, *chunk]))
        await self._record(actor, Action.DEAD_LETTERS_PURGE, task_ids, {"purged": purged})
        return purged
