"""Webhook endpoints of every owner: register, read, change, rotate, delete; the
deliveries log, redelivery and test events (the logic behind `/v1/webhooks`).

Every call names its owner and answers 404 for another's endpoint, never 403. URLs are
checked twice at registration: their form (`ssrf.check_url`: scheme, host, no userinfo,
https in production) and every address their host resolves to (`ssrf.resolve_public`);
the sender repeats the address check on the address it connects to, so DNS changing
after registration gains nothing.

Secrets: an endpoint signs with its current secret; a rotation keeps the replaced one
signing next to it for WEBHOOK_SECRET_OVERLAP_S (`secrets_for_signing`), so a receiver
can switch without rejecting a delivery. Secrets are answered only by `create` and
`rotate_secret`, and neither URLs (they may carry a receiver's token) nor secrets are
logged: log lines name the endpoint id and the URL's host.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.core.errors import Conflict, Forbidden, NotFound, TooManyRequests
from gateway.core.resources import Resources
from gateway.core.settings import Environment, Settings
from gateway.jobs.owner import Owner
from gateway.kit.cursor import decode_time_id_cursor, time_id_cursor
from gateway.kit.field_errors import invalid_field
from gateway.kit.outage import session_scope
from gateway.webhooks import ssrf
from gateway.webhooks.models import (
    AttemptOut,
    DeliveryList,
    DeliveryOut,
    DeliveryState,
    DisabledReason,
    WebhookEndpointCreated,
    WebhookEndpointIn,
    WebhookEndpointList,
    WebhookEndpointOut,
    WebhookEndpointPatch,
    WebhookEventType,
    WebhookSecretRotated,
    new_delivery_id,
    new_endpoint_id,
)
from gateway.webhooks.repository import deliveries as delivery_repo
from gateway.webhooks.repository import endpoints as repo
from gateway.webhooks.repository.notify import wake_dispatchers
from gateway.webhooks.signing import new_secret

log = structlog.get_logger("gateway.webhooks.service")

# Attempts shown per delivery in the log (retries over a day are about eight; repeated
# redeliveries could add more, which the log need not list one by one).
ATTEMPTS_SHOWN = 25


class TooManyWebhooks(TooManyRequests):
    """The owner has registered the tier's `max_webhooks` endpoints."""

    slug = "too-many-webhooks"
    title = "Too many webhook endpoints"


class EndpointSecrets(Protocol):
    """What signing needs of an endpoint (a `webhook_endpoints` row has it)."""

    secret: str
    previous_secret: str | None
    previous_secret_until: datetime | None


def secrets_for_signing(endpoint: EndpointSecrets, now: datetime) -> list[str]:
    """The secrets a delivery made at `now` is signed with: the current one, and the one
    it replaced while the rotation overlap lasts (`signing.sign` takes this list)."""
    keys = [endpoint.secret]
    until = endpoint.previous_secret_until
    if endpoint.previous_secret and until is not None and now < until:
        keys.append(endpoint.previous_secret)
    return keys


def endpoint_out(row: Any) -> WebhookEndpointOut:
    """The API shape of a `webhook_endpoints` row (no secrets)."""
    return WebhookEndpointOut(
        id=row.id,
        url=row.url,
        events=[WebhookEventType(e) for e in row.events],
        description=row.description,
        enabled=row.enabled,
        disabled_reason=(
            None if row.disabled_reason is None else DisabledReason(row.disabled_reason)
        ),
        disabled_at=row.disabled_at,
        failing_since=row.failing_since,
        events_per_s=row.rate_per_s,
        previous_secret_expires_at=row.previous_secret_until if row.previous_secret else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def delivery_out(row: Any, attempts: Sequence[Any]) -> DeliveryOut:
    """The API shape of a `webhook_deliveries` row and its recent attempts."""
    return DeliveryOut(
        id=row.id,
        event_type=row.event_type,
        event_id=row.event_id,
        state=DeliveryState(row.state),
        attempt_count=row.attempts,
        next_attempt_at=row.next_attempt_at,
        payload=row.payload,
        created_at=row.created_at,
        updated_at=row.updated_at,
        attempts=[
            AttemptOut(
                attempt=a.attempt,
                at=a.at,
                status=a.status,
                error=a.error,
                latency_ms=a.latency_ms,
                excerpt=a.excerpt,
                next_retry_at=a.next_retry_at,
            )
            for a in attempts
        ],
    )


class WebhookService:
    """Endpoints and deliveries of every owner, each call checked against its owner."""

    def __init__(self, resources: Resources) -> None:
        self.sessionmaker: async_sessionmaker[AsyncSession] = resources.sessionmaker
        self.settings: Settings = resources.settings

    # -- endpoints -----------------------------------------------------------------

    async def create(self, owner: Owner, body: WebhookEndpointIn) -> WebhookEndpointCreated:
        """Register an endpoint (URL checked, tier cap applied); it and its secret."""
        cap = owner.tier.max_webhooks
        if cap == 0:
            raise Forbidden(f"Webhooks are not part of tier {owner.tier.name!r}")
        url = await self.checked_url(body.url)
        secret = new_secret()
        async with session_scope(self.sessionmaker, write=True) as session:
            await repo.lock_owner(session, owner.id)
            if await repo.count_owned(session, owner.id) >= cap:
                raise TooManyWebhooks(
                    f"At most {cap} webhook endpoints on tier {owner.tier.name!r}:"
                    " delete one to register another",
                    extra={"max_webhooks": cap},
                )
            row = await repo.insert_endpoint(
                session,
                {
                    "id": new_endpoint_id(),
                    "owner": owner.id,
                    "url": url,
                    "events": [e.value for e in body.events],
                    "description": body.description,
                    "enabled": True,
                    "secret": secret,
                    "rate_per_s": owner.tier.webhook_events_per_s,
                },
            )
        log.info("webhook endpoint created", endpoint=row.id, owner=owner.id, host=_host(url))
        return WebhookEndpointCreated(**endpoint_out(row).model_dump(), secret=secret)

    async def get(self, owner: Owner, endpoint_id: str) -> WebhookEndpointOut:
        """One of the owner's endpoints (404 for anyone else's)."""
        async with session_scope(self.sessionmaker) as session:
            row = await repo.get_endpoint(session, endpoint_id, owner.id)
        if row is None:
            raise _no_endpoint(endpoint_id)
        return endpoint_out(row)

    async def list_endpoints(
        self, owner: Owner, *, limit: int, cursor: str | None
    ) -> WebhookEndpointList:
        """A page of the owner's endpoints, newest first."""
        before = decode_time_id_cursor(cursor)
        async with session_scope(self.sessionmaker) as session:
            rows = await repo.list_endpoints(session, owner.id, before=before, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return WebhookEndpointList(
            items=[endpoint_out(r) for r in rows], next_cursor=time_id_cursor(rows, more)
        )

    async def update(
        self, owner: Owner, endpoint_id: str, patch: WebhookEndpointPatch
    ) -> WebhookEndpointOut:
        """Change the fields `patch` names; enabling clears the disabled state."""
        given = patch.model_fields_set
        for name in ("url", "events", "enabled"):
            if name in given and getattr(patch, name) is None:
                raise invalid_field("body", name, msg="must not be null")
        # Any change also takes the caller's tier rate now (a tier changed since the
        # registration applies from the next PATCH, even an empty one).
        values: dict[str, Any] = {"rate_per_s": owner.tier.webhook_events_per_s}
        if patch.url is not None:
            values["url"] = await self.checked_url(patch.url)
        if patch.events is not None:
            values["events"] = [e.value for e in patch.events]
        if "description" in given:
            values["description"] = patch.description
        if patch.enabled is True:
            values.update(enabled=True, disabled_reason=None, disabled_at=None, failing_since=None)
        elif patch.enabled is False:
            values.update(
                enabled=False, disabled_reason=DisabledReason.OWNER.value, disabled_at=_now()
            )
        async with session_scope(self.sessionmaker, write=True) as session:
            row = await repo.update_endpoint(session, endpoint_id, owner.id, values)
            if row is not None and patch.enabled is True:
                await wake_dispatchers(session)  # its pending deliveries may go now
        if row is None:
            raise _no_endpoint(endpoint_id)
        log.info("webhook endpoint changed", endpoint=row.id, fields=sorted(values))
        return endpoint_out(row)

    async def delete(self, owner: Owner, endpoint_id: str) -> None:
        """Delete one of the owner's endpoints and its deliveries log."""
        async with session_scope(self.sessionmaker, write=True) as session:
            found = await repo.delete_endpoint(session, endpoint_id, owner.id)
        if not found:
            raise _no_endpoint(endpoint_id)
        log.info("webhook endpoint deleted", endpoint=endpoint_id, owner=owner.id)

    async def rotate_secret(self, owner: Owner, endpoint_id: str) -> WebhookSecretRotated:
        """A new secret; the replaced one keeps signing for WEBHOOK_SECRET_OVERLAP_S."""
        overlap = self.settings.webhook_secret_overlap_s
        secret = new_secret()
        until = _now() + timedelta(seconds=overlap) if overlap > 0 else None
        async with session_scope(self.sessionmaker, write=True) as session:
            row = await repo.rotate_secret(
                session, endpoint_id, owner.id, secret=secret, previous_until=until
            )
        if row is None:
            raise _no_endpoint(endpoint_id)
        log.info("webhook secret rotated", endpoint=row.id, overlap_s=overlap)
        return WebhookSecretRotated(id=row.id, secret=secret, previous_secret_expires_at=until)

    async def signing_secrets(self, endpoint_id: str, now: datetime | None = None) -> list[str]:
        """The secrets a delivery to this endpoint is signed with at `now` (default: now)."""
        async with session_scope(self.sessionmaker) as session:
            row = await repo.get_endpoint(session, endpoint_id, None)
        if row is None:
            raise _no_endpoint(endpoint_id)
        return secrets_for_signing(row, now or _now())

    async def checked_url(self, url: str) -> str:
        """The URL normalised, if the gateway may call it: its form, then every address
        its host resolves to (422 naming `url` otherwise)."""
        allow_private = self.settings.webhook_allow_private_networks
        normalised = ssrf.check_url(
            url,
            allow_private=allow_private,
            require_https=self.settings.environment is Environment.PRODUCTION,
        )
        parts = urlsplit(normalised)
        assert parts.hostname is not None  # check_url refuses a URL without a host
        port = parts.port or (443 if parts.scheme == "https" else 80)
        await ssrf.resolve_public(parts.hostname, port, allow_private=allow_private)
        return normalised

    # -- deliveries ----------------------------------------------------------------

    async def deliveries(
        self,
        owner: Owner,
        endpoint_id: str,
        *,
        states: Sequence[DeliveryState] | None,
        limit: int,
        cursor: str | None,
    ) -> DeliveryList:
        """A page of the endpoint's deliveries, newest first, with their recent attempts."""
        before = decode_time_id_cursor(cursor)
        async with session_scope(self.sessionmaker) as session:
            await self._owned(session, owner, endpoint_id)
            rows = await delivery_repo.list_deliveries(
                session,
                endpoint_id,
                states=[s.value for s in states] if states else None,
                before=before,
                limit=limit + 1,
            )
            more = len(rows) > limit
            rows = rows[:limit]
            attempts = await delivery_repo.recent_attempts(
                session, [r.id for r in rows], ATTEMPTS_SHOWN
            )
        return DeliveryList(
            items=[delivery_out(r, attempts[r.id]) for r in rows],
            next_cursor=time_id_cursor(rows, more),
        )

    async def delivery(self, owner: Owner, endpoint_id: str, delivery_id: str) -> DeliveryOut:
        """One delivery of one of the owner's endpoints, with its recent attempts."""
        async with session_scope(self.sessionmaker) as session:
            await self._owned(session, owner, endpoint_id)
            row = await delivery_repo.get_delivery(session, endpoint_id, delivery_id)
            if row is None:
                raise _no_delivery(delivery_id)
            attempts = await delivery_repo.recent_attempts(session, [row.id], ATTEMPTS_SHOWN)
        return delivery_out(row, attempts[row.id])

    async def redeliver(self, owner: Owner, endpoint_id: str, delivery_id: str) -> DeliveryOut:
        """Make a delivery pending and due now (same `webhook-id`); 409 if the endpoint is
        disabled, since nothing would send it."""
        async with session_scope(self.sessionmaker, write=True) as session:
            await self._enabled(session, owner, endpoint_id)
            row = await delivery_repo.make_due(session, endpoint_id, delivery_id)
            if row is None:
                raise _no_delivery(delivery_id)
            await wake_dispatchers(session)
            attempts = await delivery_repo.recent_attempts(session, [row.id], ATTEMPTS_SHOWN)
        log.info("webhook redelivery requested", endpoint=endpoint_id, delivery=delivery_id)
        return delivery_out(row, attempts[row.id])

    async def send_test(self, owner: Owner, endpoint_id: str) -> DeliveryOut:
        """Queue a `webhook.test` event for the endpoint (whatever events it subscribed
        to); the dispatcher sends it like any delivery."""
        now = _now()
        delivery_id = new_delivery_id()
        payload = {
            "type": WebhookEventType.WEBHOOK_TEST.value,
            "timestamp": now.isoformat(),
            "data": {"endpoint_id": endpoint_id},
        }
        async with session_scope(self.sessionmaker, write=True) as session:
            await self._enabled(session, owner, endpoint_id)
            row = await delivery_repo.insert_delivery(
                session,
                {
                    "id": delivery_id,
                    "endpoint_id": endpoint_id,
                    "event_type": WebhookEventType.WEBHOOK_TEST.value,
                    # A test is its own event: each request delivers once more.
                    "event_id": delivery_id,
                    "payload": payload,
                    "state": DeliveryState.PENDING.value,
                    "next_attempt_at": now,
                },
            )
        log.info("webhook test queued", endpoint=endpoint_id, delivery=delivery_id)
        return delivery_out(row, [])

    async def _owned(self, session: AsyncSession, owner: Owner, endpoint_id: str) -> Any:
        row = await repo.get_endpoint(session, endpoint_id, owner.id)
        if row is None:
            raise _no_endpoint(endpoint_id)
        return row

    async def _enabled(self, session: AsyncSession, owner: Owner, endpoint_id: str) -> Any:
        row = await self._owned(session, owner, endpoint_id)
        if not row.enabled:
            raise Conflict(
                f"Webhook endpoint {endpoint_id} is disabled ({row.disabled_reason}):"
                " enable it first (PATCH enabled=true)"
            )
        return row


def _now() -> datetime:
    return datetime.now(UTC)


def _host(url: str) -> str:
    return urlsplit(url).hostname or "?"


def _no_endpoint(endpoint_id: str) -> NotFound:
    return NotFound(f"No webhook endpoint {endpoint_id}")


def _no_delivery(delivery_id: str) -> NotFound:
    return NotFound(f"No delivery {delivery_id}")
