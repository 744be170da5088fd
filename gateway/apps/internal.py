"""What the two worker ports share: the worker plane (with the jobs tracker as its
results hook, and the parcel watcher on the parcel port) and the proxy pool.

The parcel and party ports serve the same protocol over separate queues, tokens and
tables; only the audience, the title and the router list differ.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from gateway.apps.builder import build_app
from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.jobs.plane import tracker_for
from gateway.proxy_pool.plane import ProxyPoolPlane
from gateway.watches.plane import watcher_for
from gateway.work.plane import WorkerPlane


def build_internal_app(
    resources: Resources, audience: Audience, *, title: str, routers: list[APIRouter]
) -> FastAPI:
    """One worker port's app: its worker plane (reaper, long-poll) and proxy upkeep."""
    return build_app(
        audience=audience,
        resources=resources,
        title=title,
        routers=routers,
        docs_enabled=resources.settings.internal_docs_enabled,
        planes=[
            # Results move the client jobs waiting on their tasks (gateway/jobs/tracker.py).
            # and, on the parcel port, record what they change for parcel watches.
            WorkerPlane.build(
                resources,
                audience,
                hooks=tracker_for(resources, audience),
                watch=watcher_for(resources, audience) if audience is Audience.PARCEL else None,
            ),
            ProxyPoolPlane.build(resources, audience),
        ],
    )
