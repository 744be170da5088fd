"""Wiring of the worker plane into an internal app: its lifespan and dependency."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from gateway.core.audience import Audience
from gateway.work.plane import WorkerPlane


def worker_plane_lifespan(
    audience: Audience,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that runs `audience`'s worker plane (wake subscriber, reaper)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        plane = WorkerPlane(app.state.resources, audience.value)
        app.state.worker_plane = plane
        await plane.start()
        try:
            yield
        finally:
            await plane.stop()

    return lifespan


async def get_worker_plane(request: Request) -> WorkerPlane:
    """The worker plane of the app serving this request (async: no threadpool hop)."""
    plane: WorkerPlane = request.app.state.worker_plane
    return plane


WorkerPlaneDep = Annotated[WorkerPlane, Depends(get_worker_plane)]
