"""Webhook endpoints (`/v1/webhooks`), their deliveries and attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from taxlien_gateway.models._base import Model, Page

WebhookEventType = Literal[
    "job.completed",
    "job.partially_failed",
    "job.failed",
    "job.cancelled",
    "job.expired",
    "job.progress",
    "parcel.changed",
    "webhook.test",
]
DeliveryState = Literal["pending", "sending", "succeeded", "failed", "dead"]


class WebhookEndpoint(Model):
    """A registered endpoint, without its secrets."""

    id: str
    url: str
    events: list[WebhookEventType]
    description: str | None = None
    enabled: bool
    disabled_reason: Literal["owner", "gone", "failing"] | None = None
    disabled_at: datetime | None = None
    failing_since: datetime | None = None
    previous_secret_expires_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class CreatedWebhookEndpoint(WebhookEndpoint):
    """A new endpoint and its signing secret (`whsec_...`), shown only in this answer."""

    secret: str


class RotatedSecret(Model):
    """A rotation's new secret; the old one signs next to it until the given time."""

    id: str
    secret: str
    previous_secret_expires_at: datetime | None = None


class DeliveryAttempt(Model):
    """One attempt of a delivery (`status` null when the receiver never answered)."""

    attempt: int
    at: datetime
    status: int | None = None
    error: str | None = None
    latency_ms: float
    excerpt: str
    next_retry_at: datetime | None = None


class Delivery(Model):
    """One event for one endpoint; `id` is the `webhook-id` header of every attempt."""

    id: str
    event_type: str
    event_id: str
    state: DeliveryState
    attempt_count: int
    next_attempt_at: datetime | None = None
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    attempts: list[DeliveryAttempt]


class WebhookEndpointPage(Page[WebhookEndpoint]):
    """A page of endpoints, newest first."""


class DeliveryPage(Page[Delivery]):
    """A page of an endpoint's deliveries, newest first."""
