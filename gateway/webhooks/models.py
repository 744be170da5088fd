"""Shapes of webhooks: endpoints a caller registers, deliveries and their attempts.

An endpoint names the events it wants (`WebhookEventType`); a delivery is one event for
one endpoint, and its id (`msg_...`) is the Standard Webhooks `webhook-id`, the same on
every attempt so receivers can de-duplicate. Secrets appear in exactly two answers: the
creation (`WebhookEndpointCreated`) and a rotation (`WebhookSecretRotated`).
"""

from __future__ import annotations

import enum
import secrets
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.kit.pg_text import NOT_STORABLE_MSG, storable_text

ENDPOINT_ID_PATTERN = r"^wh_[0-9a-f]{24}$"
DELIVERY_ID_PATTERN = r"^msg_[0-9a-f]{24}$"
URL_MAX = 2048


def new_endpoint_id() -> str:
    """A fresh endpoint id (`wh_` and 24 hex digits, 96 random bits)."""
    return "wh_" + secrets.token_hex(12)


def new_delivery_id() -> str:
    """A fresh delivery id (`msg_` and 24 hex digits): the delivery's `webhook-id`."""
    return "msg_" + secrets.token_hex(12)


class WebhookEventType(enum.StrEnum):
    """Events an endpoint can subscribe to."""

    JOB_COMPLETED = "job.completed"
    JOB_PARTIALLY_FAILED = "job.partially_failed"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"
    JOB_EXPIRED = "job.expired"
    JOB_PROGRESS = "job.progress"
    PARCEL_CHANGED = "parcel.changed"
    WEBHOOK_TEST = "webhook.test"
    WEBHOOK_DISABLED = "webhook.disabled"  # another endpoint of the owner was disabled


class DeliveryState(enum.StrEnum):
    """A delivery's lifecycle: `pending` until sent (or retried), then one of the rest.

    `failed` is a delivery whose last attempt failed and that is not retried any more
    (its endpoint was disabled); `dead` ran out of retries.
    """

    PENDING = "pending"
    SENDING = "sending"  # claimed by a replica's dispatcher, an attempt under way
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"


class DisabledReason(enum.StrEnum):
    """Why an endpoint is disabled (`disabled_reason`)."""

    OWNER = "owner"  # PATCH enabled=false
    GONE = "gone"  # the receiver answered 410 Gone
    FAILING = "failing"  # no success for WEBHOOK_DISABLE_AFTER_S


def _storable(value: str) -> str:
    if not storable_text(value):
        raise ValueError(NOT_STORABLE_MSG)
    return value


def _dedupe(events: list[WebhookEventType]) -> list[WebhookEventType]:
    # Order kept (the caller's), repeats dropped: `["job.failed", "job.failed"]` is one.
    return list(dict.fromkeys(events))


Url = Annotated[
    str,
    Field(min_length=1, max_length=URL_MAX, description="Where deliveries are POSTed"),
    AfterValidator(_storable),
]
Events = Annotated[
    list[WebhookEventType],
    Field(min_length=1, max_length=64, description="Events to deliver (repeats dropped)"),
    AfterValidator(_dedupe),
]
Description = Annotated[
    str, Field(max_length=500, description="A note for you"), AfterValidator(_storable)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookEndpointIn(_Strict):
    """`POST /v1/webhooks` body."""

    url: Url
    events: Events
    description: Description | None = None


class WebhookEndpointPatch(_Strict):
    """`PATCH /v1/webhooks/{id}` body: only the fields given change (`description: null`
    clears it; `enabled: true` also clears the disabled reason and failure streak)."""

    url: Url | None = None
    events: Events | None = None
    description: Description | None = None
    enabled: bool | None = None


class WebhookEndpointOut(BaseModel):
    """An endpoint, without its secrets."""

    id: str
    url: str
    events: list[WebhookEventType]
    description: str | None
    enabled: bool
    disabled_reason: DisabledReason | None
    disabled_at: datetime | None
    failing_since: datetime | None = Field(
        description="Start of the current run of failed attempts (null when healthy)"
    )
    events_per_s: float | None = Field(
        description="Deliveries per second to this endpoint at most (the tier's"
        " `webhook_events_per_s` when it was registered or last changed; null: no limit)."
        " Over it deliveries wait their turn; none is dropped."
    )
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the secret replaced by the last rotation still signs"
    )
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpointOut):
    """A new endpoint and its signing secret (shown only in this answer)."""

    secret: str = Field(description="Signing secret (`whsec_...`): store it now")


class WebhookEndpointList(BaseModel):
    """A page of endpoints, newest first; `next_cursor` is null on the last page."""

    items: list[WebhookEndpointOut]
    next_cursor: str | None


class WebhookSecretRotated(BaseModel):
    """A rotation's new secret; the old one signs next to it until the given time."""

    id: str
    secret: str = Field(description="The new signing secret (`whsec_...`): store it now")
    previous_secret_expires_at: datetime | None


class AttemptOut(BaseModel):
    """One attempt of a delivery."""

    attempt: int
    at: datetime
    status: int | None = Field(description="The receiver's HTTP status (null: no answer)")
    error: str | None = Field(description="Why the attempt failed (timeout, refused, ...)")
    latency_ms: float
    excerpt: str = Field(description="The start of the receiver's answer")
    next_retry_at: datetime | None


class DeliveryOut(BaseModel):
    """One event for one endpoint and its most recent attempts."""

    id: str = Field(description="The `webhook-id` header of every attempt")
    event_type: str
    event_id: str
    state: DeliveryState
    attempt_count: int
    next_attempt_at: datetime | None
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    attempts: list[AttemptOut] = Field(description="The most recent attempts, oldest first")


class DeliveryList(BaseModel):
    """A page of an endpoint's deliveries, newest first."""

    items: list[DeliveryOut]
    next_cursor: str | None
