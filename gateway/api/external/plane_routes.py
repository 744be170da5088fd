"""Routers of the public plane (properties, account, admin), of client jobs, live
streams, webhooks and parcel watches."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.external import (
    account,
    admin,
    admin_audit,
    admin_credentials,
    admin_jobs,
    admin_routing,
    admin_status,
    admin_users,
    downloads,
    job_uploads,
    jobs,
    properties,
    streams,
    watches,
    webhook_schemas,
    webhooks,
    ws,
)


def plane_routers() -> list[APIRouter]:
    """The public plane's routers, in include order."""
    return [
        properties.router,
        account.router,
        admin.router,
        # Upload before the job routes: `/v1/jobs/upload` must not match `/v1/jobs/{id}`.
        job_uploads.router,
        jobs.router,
        streams.router,
        ws.router,
        downloads.router,
        admin_jobs.router,
        admin_routing.router,
        admin_audit.router,
        admin_status.router,
        admin_users.router,
        admin_credentials.router,
        # Before the endpoint routes: `/v1/webhooks/schemas/...` is no endpoint id.
        webhook_schemas.router,
        webhooks.router,
        watches.router,
    ]
