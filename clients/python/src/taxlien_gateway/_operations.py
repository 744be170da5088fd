"""Every public API operation as a `Call`: the one list both clients send from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from taxlien_gateway._call import Call, call
from taxlien_gateway.models import (
    ApiKey,
    CreatedJob,
    CreatedWebhookEndpoint,
    Delivery,
    DeliveryPage,
    IssuedApiKey,
    Job,
    JobItemPage,
    JobPage,
    Me,
    ParcelChangePage,
    Property,
    PropertyHistoryPage,
    PropertyPage,
    RotatedSecret,
    Watch,
    WatchPage,
    WebhookEndpoint,
    WebhookEndpointPage,
)
from taxlien_gateway.models._base import Model


class ApiKeyList(Model):
    """`GET /v1/api-keys`: the caller's keys, newest first (not paginated)."""

    items: list[ApiKey]


def _seg(value: str) -> str:
    return quote(value, safe="")


def _csv(values: str | Sequence[str] | None) -> str | None:
    if values is None or isinstance(values, str):
        return values
    return ",".join(values)


def _body(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


# -- account -----------------------------------------------------------------------------


def me() -> Call[Me]:
    """`GET /v1/me`."""
    return call("GET", "/v1/me", Me)


def create_api_key(
    name: str, tier: str | None, scopes: Sequence[str] | None, key: str | None
) -> Call[IssuedApiKey]:
    """`POST /v1/api-keys`."""
    body = _body(name=name, tier=tier, scopes=None if scopes is None else list(scopes))
    return call("POST", "/v1/api-keys", IssuedApiKey, json=body, idempotency_key=key)


def list_api_keys() -> Call[ApiKeyList]:
    """`GET /v1/api-keys`."""
    return call("GET", "/v1/api-keys", ApiKeyList)


def rotate_api_key(key_id: str, key: str | None) -> Call[IssuedApiKey]:
    """`POST /v1/api-keys/{id}/rotate`."""
    path = f"/v1/api-keys/{_seg(key_id)}/rotate"
    return call("POST", path, IssuedApiKey, idempotency_key=key)


def revoke_api_key(key_id: str) -> Call[None]:
    """`DELETE /v1/api-keys/{id}`."""
    return call("DELETE", f"/v1/api-keys/{_seg(key_id)}", None)


# -- properties --------------------------------------------------------------------------


def get_property(parcel_id: str) -> Call[Property]:
    """`GET /v1/properties/{parcel_id}`."""
    return call("GET", f"/v1/properties/{_seg(parcel_id)}", Property)


def property_history(parcel_id: str, limit: int | None) -> Call[PropertyHistoryPage]:
    """`GET /v1/properties/{parcel_id}/history`."""
    path = f"/v1/properties/{_seg(parcel_id)}/history"
    return call("GET", path, PropertyHistoryPage, params={"limit": limit})


def search_properties(
    *,
    state: str | None,
    county: str | None,
    lien_status: str | None,
    min_amount: Decimal | float | str | None,
    max_amount: Decimal | float | str | None,
    q: str | None,
    limit: int | None,
) -> Call[PropertyPage]:
    """`GET /v1/properties/search`."""
    params = {
        "state": state,
        "county": county,
        "lien_status": lien_status,
        "min_amount": None if min_amount is None else str(min_amount),
        "max_amount": None if max_amount is None else str(max_amount),
        "q": q,
        "limit": limit,
    }
    return call("GET", "/v1/properties/search", PropertyPage, params=params)


# -- jobs --------------------------------------------------------------------------------


def create_job(
    *,
    kind: str,
    items: Sequence[dict[str, str]],
    priority: int | None,
    deadline: datetime | None,
    label: str | None,
    key: str | None,
) -> Call[CreatedJob]:
    """`POST /v1/jobs`."""
    body = _body(
        kind=kind,
        items=list(items),
        priority=priority,
        deadline=None if deadline is None else deadline.isoformat(),
        label=label,
    )
    return call("POST", "/v1/jobs", CreatedJob, json=body, idempotency_key=key)


def get_job(job_id: str) -> Call[Job]:
    """`GET /v1/jobs/{id}`."""
    return call("GET", f"/v1/jobs/{_seg(job_id)}", Job)


def list_jobs(
    *,
    status: str | Sequence[str] | None,
    kind: str | None,
    created_after: datetime | None,
    limit: int | None,
) -> Call[JobPage]:
    """`GET /v1/jobs`."""
    params = {
        "status": _csv(status),
        "kind": kind,
        "created_after": None if created_after is None else created_after.isoformat(),
        "limit": limit,
    }
    return call("GET", "/v1/jobs", JobPage, params=params)


def job_items(job_id: str, *, status: str | None, limit: int | None) -> Call[JobItemPage]:
    """`GET /v1/jobs/{id}/items`."""
    path = f"/v1/jobs/{_seg(job_id)}/items"
    return call("GET", path, JobItemPage, params={"status": status, "limit": limit})


def cancel_job(job_id: str, key: str | None) -> Call[Job]:
    """`POST /v1/jobs/{id}/cancel`."""
    return call("POST", f"/v1/jobs/{_seg(job_id)}/cancel", Job, idempotency_key=key)


def job_events_path(job_id: str) -> str:
    """Where a job's Server-Sent Events stream is."""
    return f"/v1/jobs/{_seg(job_id)}/events"


# -- webhooks ----------------------------------------------------------------------------


def create_webhook(
    url: str, events: Sequence[str], description: str | None, key: str | None
) -> Call[CreatedWebhookEndpoint]:
    """`POST /v1/webhooks`."""
    body = _body(url=url, events=list(events), description=description)
    return call("POST", "/v1/webhooks", CreatedWebhookEndpoint, json=body, idempotency_key=key)


def list_webhooks(limit: int | None) -> Call[WebhookEndpointPage]:
    """`GET /v1/webhooks`."""
    return call("GET", "/v1/webhooks", WebhookEndpointPage, params={"limit": limit})


def get_webhook(endpoint_id: str) -> Call[WebhookEndpoint]:
    """`GET /v1/webhooks/{id}`."""
    return call("GET", f"/v1/webhooks/{_seg(endpoint_id)}", WebhookEndpoint)


def update_webhook(endpoint_id: str, changes: dict[str, Any]) -> Call[WebhookEndpoint]:
    """`PATCH /v1/webhooks/{id}` (only the given fields; `description=None` clears it)."""
    return call("PATCH", f"/v1/webhooks/{_seg(endpoint_id)}", WebhookEndpoint, json=changes)


def delete_webhook(endpoint_id: str) -> Call[None]:
    """`DELETE /v1/webhooks/{id}`."""
    return call("DELETE", f"/v1/webhooks/{_seg(endpoint_id)}", None)


def rotate_webhook_secret(endpoint_id: str, key: str | None) -> Call[RotatedSecret]:
    """`POST /v1/webhooks/{id}/rotate-secret`."""
    path = f"/v1/webhooks/{_seg(endpoint_id)}/rotate-secret"
    return call("POST", path, RotatedSecret, idempotency_key=key)


def test_webhook(endpoint_id: str, key: str | None) -> Call[Delivery]:
    """`POST /v1/webhooks/{id}/test`."""
    return call("POST", f"/v1/webhooks/{_seg(endpoint_id)}/test", Delivery, idempotency_key=key)


def list_deliveries(
    endpoint_id: str, status: str | Sequence[str] | None, limit: int | None
) -> Call[DeliveryPage]:
    """`GET /v1/webhooks/{id}/deliveries`."""
    path = f"/v1/webhooks/{_seg(endpoint_id)}/deliveries"
    return call("GET", path, DeliveryPage, params={"status": _csv(status), "limit": limit})


def get_delivery(endpoint_id: str, delivery_id: str) -> Call[Delivery]:
    """`GET /v1/webhooks/{id}/deliveries/{delivery_id}`."""
    path = f"/v1/webhooks/{_seg(endpoint_id)}/deliveries/{_seg(delivery_id)}"
    return call("GET", path, Delivery)


def redeliver(endpoint_id: str, delivery_id: str, key: str | None) -> Call[Delivery]:
    """`POST /v1/webhooks/{id}/deliveries/{delivery_id}/redeliver`."""
    path = f"/v1/webhooks/{_seg(endpoint_id)}/deliveries/{_seg(delivery_id)}/redeliver"
    return call("POST", path, Delivery, idempotency_key=key)


# -- watches -----------------------------------------------------------------------------


def create_watch(
    platform: str, parcel_ids: Sequence[str], fields: Sequence[str] | None, key: str | None
) -> Call[Watch]:
    """`POST /v1/watches`."""
    body = _body(
        platform=platform,
        parcel_ids=list(parcel_ids),
        fields=None if fields is None else list(fields),
    )
    return call("POST", "/v1/watches", Watch, json=body, idempotency_key=key)


def list_watches(limit: int | None) -> Call[WatchPage]:
    """`GET /v1/watches`."""
    return call("GET", "/v1/watches", WatchPage, params={"limit": limit})


def get_watch(watch_id: str) -> Call[Watch]:
    """`GET /v1/watches/{id}`."""
    return call("GET", f"/v1/watches/{_seg(watch_id)}", Watch)


def delete_watch(watch_id: str) -> Call[None]:
    """`DELETE /v1/watches/{id}`."""
    return call("DELETE", f"/v1/watches/{_seg(watch_id)}", None)


def watch_changes(watch_id: str, limit: int | None) -> Call[ParcelChangePage]:
    """`GET /v1/watches/{id}/changes`."""
    path = f"/v1/watches/{_seg(watch_id)}/changes"
    return call("GET", path, ParcelChangePage, params={"limit": limit})
