"""App factory for the public port: SSR site and mobile apps."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware

from gateway.api.external import job_uploads, properties, streams
from gateway.api.external.routes import public_routers
from gateway.api.external.stream_front import EventStreamFront
from gateway.api.middleware.idempotency import IdempotencyLayer
from gateway.api.middleware.security_headers import CrossOriginOnlyCORS
from gateway.apps.builder import build_app
from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.fastpath.cache_hit import PropertyHitShortcut
from gateway.jobs.plane import JobsPlane
from gateway.public.plane import PublicPlane
from gateway.streams.plane import StreamsPlane
from gateway.watches.plane import WatchesPlane
from gateway.webhooks.plane import WebhooksPlane

_EXPOSED = [
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "X-Cache",
    "Age",
    "ETag",
    "X-Request-ID",
    "Idempotent-Replayed",
]


def create_public_app(resources: Resources) -> FastAPI:
    """The public API (`/v1/...`)."""
    plane = PublicPlane.build(resources, Audience.PUBLIC)

    cors = Middleware(
        CrossOriginOnlyCORS,
        allow_origins=resources.settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        allow_headers=[
            "Authorization",
            "X-API-Key",
            "Content-Type",
            "If-None-Match",
            "X-Request-ID",
            "Idempotency-Key",
            # EventSource polyfills and fetch-based SSE clients resume with it.
            "Last-Event-ID",
        ],
        expose_headers=_EXPOSED,
        max_age=600,
    )
    layers = [cors]
    if resources.settings.fastpath:
        # SSE streams answered in front of FastAPI, whose request stack would stay alive
        # for each stream's whole life (gateway/api/external/stream_front.py).
        layers.append(Middleware(EventStreamFront, route=streams.event_stream_route()))
    if resources.settings.fastpath:
        # Fresh single-parcel cache hits answered in front of FastAPI (gateway/fastpath/).
        layers.append(
            Middleware(PropertyHitShortcut, plane=plane, route=properties.property_route())
        )
    # Innermost, so cache hits never pass it; inside CORS, so replays and its problems
    # carry the CORS headers like any answer.
    layers.append(Middleware(IdempotencyLayer, plane=plane))
    return build_app(
        audience=Audience.PUBLIC,
        resources=resources,
        title="Tax-lien gateway: public API",
        routers=public_routers(),
        docs_enabled=resources.settings.public_docs_enabled,
        planes=[
            plane,
            JobsPlane.build(resources),
            StreamsPlane.build(resources),
            WebhooksPlane.build(resources),
            WatchesPlane.build(resources),
        ],
        # Inside the request context: CORS preflights get a request id, a log line, metrics
        # and the security headers like any other response.
        layers=layers,
        # Job uploads are files: JOB_UPLOAD_MAX_BYTES, not MAX_BODY_BYTES, bounds them.
        body_limits={job_uploads.UPLOAD_PATH: resources.settings.job_upload_max_bytes},
    )
