"""What the results path tells other capabilities (placeholder until the waiters branch)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class DoneTask:
    """A task whose result was newly committed."""

    task_id: str
    platform: str


@dataclass(frozen=True)
class DeadTask:
    """A dead-lettered task."""

    task_id: str
    platform: str
    error: str
    attempts: int


AfterCommit = Callable[[], Awaitable[None]]


class TaskHooks(Protocol):
    """Called by the results path."""

    async def on_commit(
        self, session: AsyncSession, audience: str, done: Sequence[DoneTask]
    ) -> AfterCommit | None:
        """Inside the commit transaction."""
        ...

    async def on_dead(self, audience: str, dead: Sequence[DeadTask]) -> None:
        """After dead-lettering."""
        ...
