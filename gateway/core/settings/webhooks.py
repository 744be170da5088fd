"""Settings of webhooks (signed, retried delivery of job and parcel events).

A mixin of `gateway.core.settings.Settings`; environment names stay flat
(`WEBHOOK_TIMEOUT_S`, `WEBHOOK_SECRET_OVERLAP_S`, ...). What a caller may register
(endpoints, events per second) is per tier (`core/settings/tiers.py`).

`WEBHOOK_ALLOW_PRIVATE_NETWORKS=true` lets endpoints point at loopback and private
addresses (development, tests); production refuses it, and requires `https` URLs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings


class WebhookSettings(BaseSettings):
    """Webhooks; see the "Webhooks" section of the README."""

    # After a secret rotation the old secret keeps signing next to the new one this long.
    webhook_secret_overlap_s: Annotated[int, Field(ge=0, le=86_400 * 30)] = 86_400
    # One delivery attempt: connect, send, and read the answer's head and excerpt.
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    # Bytes of a receiver's answer kept in the deliveries log.
    webhook_response_excerpt_bytes: Annotated[int, Field(ge=0, le=65_536)] = 1024
    # An endpoint failing without a success for this long is disabled.
    webhook_disable_after_s: Annotated[int, Field(ge=60, le=86_400 * 60)] = 5 * 86_400
    # How often each replica fans job events out and claims due deliveries at the latest
    # (the poll: a replica also steps at once when an outbox insert is notified).
    webhook_dispatch_interval_s: Annotated[float, Field(gt=0, le=600)] = 0.2
    # Run the delivery loop (fan-out and dispatch) in this process. false: the process
    # serves the webhook API only and other replicas deliver (a loader, an API-only pool).
    webhook_delivery: bool = True
    # LISTEN for outbox inserts (off behind a transaction-mode pooler such as PgBouncer,
    # where LISTEN does not work; deliveries then wait for the poll).
    webhook_listen: bool = True
    # Loopback and private addresses allowed as endpoints (never in production).
    webhook_allow_private_networks: bool = False
