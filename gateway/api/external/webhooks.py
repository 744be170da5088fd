"""`/v1/webhooks`: register, read, change, rotate and delete webhook endpoints; their
deliveries log, redelivery and test events (thin: `gateway/webhooks/service.py` holds
the logic). A caller sees only its own endpoints: anyone else's is a 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from gateway.api.deps import plane_of
from gateway.api.external.jobs import page_size
from gateway.api.external.jobs_deps import owner_of
from gateway.api.external.public_deps import Caller, CallerDep
from gateway.api.external.requires import requires
from gateway.core.errors import Forbidden
from gateway.jobs.owner import Owner
from gateway.kit.field_errors import invalid_field
from gateway.public.permissions import Scope
from gateway.public.principal import PrincipalKind
from gateway.webhooks.models import (
    DELIVERY_ID_PATTERN,
    ENDPOINT_ID_PATTERN,
    DeliveryList,
    DeliveryOut,
    DeliveryState,
    WebhookEndpointCreated,
    WebhookEndpointIn,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookEndpointPatch,
    WebhookSecretRotated,
)
from gateway.webhooks.plane import WebhooksPlane

router = APIRouter(prefix="/v1", tags=["webhooks"])

EndpointIdPath = Annotated[
    str, Path(pattern=ENDPOINT_ID_PATTERN, description="The webhook endpoint id")
]
DeliveryIdPath = Annotated[
    str, Path(pattern=DELIVERY_ID_PATTERN, description="The delivery id (its webhook-id)")
]
Limit = Annotated[int | None, Query(ge=1, le=1000)]
Cursor = Annotated[str | None, Query(max_length=512)]
_NO_STORE = {"Cache-Control": "no-store"}


async def get_webhooks_plane(request: Request) -> WebhooksPlane:
    """The webhooks plane of this app."""
    plane: WebhooksPlane = plane_of(request, WebhooksPlane.name)
    return plane


async def get_webhook_owner(caller: CallerDep) -> Owner:
    """The caller as an endpoint owner; anonymous callers own none (403)."""
    if caller.principal.kind is PrincipalKind.ANONYMOUS:
        raise Forbidden("Webhooks need an account: sign in or use an API key")
    return owner_of(caller)


PlaneDep = Annotated[WebhooksPlane, Depends(get_webhooks_plane)]
OwnerDep = Annotated[Owner, Depends(get_webhook_owner)]


def parse_delivery_states(status: str | None) -> list[DeliveryState] | None:
    """`status=pending,failed` as states (422 naming an unknown one)."""
    if not status:
        return None
    states: list[DeliveryState] = []
    for name in (s.strip() for s in status.split(",") if s.strip()):
        try:
            states.append(DeliveryState(name))
        except ValueError:
            raise invalid_field("query", "status", msg=f"unknown state {name[:40]!r}") from None
    return states


@router.post(
    "/webhooks", status_code=201, summary="Register a webhook endpoint (its secret shown once)"
)
async def create_webhook(
    _allowed: Annotated[Caller, requires(Scope.WEBHOOKS_WRITE)],
    body: WebhookEndpointIn,
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
) -> WebhookEndpointCreated:
    """The URL must be one the gateway may call (https in production, a public host);
    the answer carries the signing secret, which no later read shows."""
    created = await plane.service.create(owner, body)
    response.headers["Location"] = f"/v1/webhooks/{created.id}"
    response.headers.update(_NO_STORE)
    return created


@router.get("/webhooks", summary="The caller's webhook endpoints, newest first")
async def list_webhooks(
    _allowed: Annotated[Caller, requires(Scope.WEBHOOKS_READ)],
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
    limit: Limit = None,
    cursor: Cursor = None,
) -> WebhookEndpointList:
    """A page of endpoints (no secrets); follow `next_cursor` for the next one."""
    response.headers.update(_NO_STORE)
    return await plane.service.list_endpoints(owner, limit=page_size(owner, limit), cursor=cursor)


@router.get("/webhooks/{endpoint_id}", summary="One webhook endpoint")
async def get_webhook(
    _allowed: Annotated[Caller, requires(Scope.WEBHOOKS_READ)],
    endpoint_id: EndpointIdPath,
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
) -> WebhookEndpointOut:
    """One of the caller's endpoints (no secret)."""
    response.headers.update(_NO_STORE)
    return await plane.service.get(owner, endpoint_id)


@router.patch("/webhooks/{endpoint_id}", summary="Change an endpoint's URL, events or state")
async def update_webhook(
    _allowed: Annotated[Caller, requires(Scope.WEBHOOKS_WRITE)],
    endpoint_id: EndpointIdPath,
    body: WebhookEndpointPatch,
    owner: OwnerDep,
    plane: PlaneDep,
) -> WebhookEndpointOut:
    """Only the given fields change; `enabled: true` re-enables a disabled endpoint."""
    return await plane.service.update(owner, endpoint_id, body)


@router.delete("/webhooks/{endpoint_id}", status_code=204, summary="Delete an endpoint")
async def delete_webhook(
    _allowed: Annotated[Caller, requires(Scope.WEBHOOKS_WRITE)],
    endpoint_id: EndpointIdPath,
    owner: OwnerDep,
    plane: PlaneDep,
) -> None:
    """The endpoint and its deliveries log are gone; nothing more is sent to it."""
    await plane.service.delete(owner, endpoint_id)


@router.post(
    "/webhooks/{endpoint_id}/rotate-secret",
    summary="Replace the signing secret (the old one signs alongside for an overlap)",
)
async def rotate_webhook_secret(
    _allowed: Annotated[Caller, requires(Scope.WEBHOOKS_WRITE)],
    endpoint_id: EndpointIdPath,
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
) -> WebhookSecretRotated:
    """The new secret, shown only here; deliveries carry a signature by each secret until
    `previous_secret_expires_at`."""
    response.headers.update(_NO_STORE)
    return await plane.service.rotate_secret(owner, endpoint_id)


@router.get("/webhooks/{endpoint_id}/deliveries", summary="An endpoint's deliveries log")
async def list_deliveries(
    _allowed: Annotated[Caller, requires(Scope.WEBHOOKS_READ)],
    endpoint_id: EndpointIdPath,
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
    status: Annotated[
        str | None,
        Query(description="Comma-separated states (pending, succeeded, failed, dead)"),
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> DeliveryList:
    """Deliveries newest first, each with its recent attempts; follow `next_cursor`."""
    response.headers.update(_NO_STORE)
    return await plane.service.deliveries(
        owner,
        endpoint_id,
        states=parse_delivery_states(status),
        limit=page_size(owner, limit),
        cursor=cursor,
    )


@router.get("/webhooks/{endpoint_id}/deliveries/{delivery_id}", summary="One delivery")
async def get_delivery(
    _allowed: Annotated[Caller, requires(Scope.WEBHOOKS_READ)],
    endpoint_id: EndpointIdPath,
    delivery_id: DeliveryIdPath,
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
) -> DeliveryOut:
    """One delivery of the caller's endpoint, with its recent attempts."""
    response.headers.update(_NO_STORE)
    return await plane.service.delivery(owner, endpoint_id, delivery_id)


@router.post(
    "/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Send a delivery again (same webhook-id)",
)
async def redeliver(
    _allowed: Annotated[Caller, requires(Scope.WEBHOOKS_WRITE)],
    endpoint_id: EndpointIdPath,
    delivery_id: DeliveryIdPath,
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
) -> DeliveryOut:
    """The delivery is pending and due now; 409 while the endpoint is disabled."""
    delivery = await plane.service.redeliver(owner, endpoint_id, delivery_id)
    response.headers["Location"] = f"/v1/webhooks/{endpoint_id}/deliveries/{delivery.id}"
    return delivery


@router.post(
    "/webhooks/{endpoint_id}/test",
    status_code=202,
    summary="Send a webhook.test event through the delivery path",
)
async def send_test_event(
    _allowed: Annotated[Caller, requires(Scope.WEBHOOKS_WRITE)],
    endpoint_id: EndpointIdPath,
    owner: OwnerDep,
    plane: PlaneDep,
    response: Response,
) -> DeliveryOut:
    """A `webhook.test` delivery, pending: follow it at `Location`."""
    delivery = await plane.service.send_test(owner, endpoint_id)
    response.headers["Location"] = f"/v1/webhooks/{endpoint_id}/deliveries/{delivery.id}"
    return delivery
