"""The one shape of a capability's plane: built from resources, started, stopped.

A plane is everything one capability needs while an app serves: its services, wired once
from the process's shared `Resources`, and its background loops. Every capability's
`plane.py` exposes a class of this shape; the app factories (`gateway/apps/`) are the
only place that says which planes a port runs, and `gateway/apps/builder.py` starts them
in order before the port serves and stops them in reverse after it stopped. Routes reach a
plane through `app.state.planes[NAME]` (see `gateway/api/deps.py`), never by building one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol, Self

if TYPE_CHECKING:
    from gateway.core.audience import Audience
    from gateway.core.resources import Resources


class Plane(Protocol):
    """A capability's services and background work on one port."""

    name: ClassVar[str]

    @classmethod
    def build(cls, resources: Resources, audience: Audience) -> Self:
        """Wire the plane from the shared resources (no pools of its own, no I/O)."""
        ...

    async def start(self) -> None:
        """Start background work (loops, subscribers)."""
        ...

    async def stop(self) -> None:
        """Stop background work and release what the plane holds."""
        ...


@contextlib.asynccontextmanager
async def running(planes: Sequence[Plane]) -> AsyncIterator[None]:
    """Start `planes` in order; stop the started ones in reverse, also after a failure."""
    async with contextlib.AsyncExitStack() as stack:
        for plane in planes:
            await plane.start()
            stack.push_async_callback(plane.stop)
        yield
