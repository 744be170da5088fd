"""`webhook.disabled`: when delivery disables an endpoint, the owner's other endpoints
that subscribed to `webhook.disabled` are told, in the transaction that disabled it.

An endpoint is disabled by delivery when it answers `410 Gone` (`reason: "gone"`) or
fails without a success for WEBHOOK_DISABLE_AFTER_S (`"failing"`); an owner's own
`PATCH enabled=false` is not announced (the owner did it). The disabled endpoint itself
gets nothing more, so the event goes to the others: a partner with a second endpoint (a
monitoring hook, say) learns that deliveries to the first have stopped. The state is also
on the endpoint itself: `enabled: false`, `disabled_reason`, `disabled_at` in
`GET /v1/webhooks/{id}`.

The body (`data`) names the endpoint (id and description, never its URL, which may carry
a receiver's token), why and when it was disabled, when its failures began, and the
attempt that disabled it. The event id is `<endpoint>:disabled:<disabled_at>`, one per
time the endpoint is disabled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.webhooks.models import WebhookEventType, new_delivery_id
from gateway.webhooks.repository import endpoints, outbox
from gateway.webhooks.repository.dispatch import Outcome

WEBHOOK_DISABLED = WebhookEventType.WEBHOOK_DISABLED.value


def disabled_body(row: Any, last: Outcome | None) -> dict[str, Any]:
    """The `webhook.disabled` payload for a disabled `webhook_endpoints` row."""
    attempt = None
    if last is not None:
        attempt = {
            "delivery_id": last.claimed.id,
            "at": last.at.isoformat(),
            "status": last.status,
            "error": last.error,
        }
    return {
        "type": WEBHOOK_DISABLED,
        "timestamp": row.disabled_at.isoformat(),
        "data": {
            "endpoint_id": row.id,
            "description": row.description,
            "reason": row.disabled_reason,
            "disabled_at": row.disabled_at.isoformat(),
            "failing_since": None if row.failing_since is None else row.failing_since.isoformat(),
            "last_attempt": attempt,
        },
    }


async def announce(
    session: AsyncSession, endpoint_ids: Sequence[str], last: Mapping[str, Outcome]
) -> int:
    """Queue `webhook.disabled` for the owners' other subscribed enabled endpoints of
    each endpoint just disabled (in the caller's transaction); how many deliveries."""
    disabled = [
        row
        for endpoint_id in sorted(endpoint_ids)
        if (row := await endpoints.get_endpoint(session, endpoint_id, None)) is not None
    ]
    if not disabled:
        return 0
    listeners = await outbox.subscribers(session, sorted({r.owner for r in disabled}))
    rows = [
        {
            "id": new_delivery_id(),
            "endpoint_id": sub.id,
            "event_type": WEBHOOK_DISABLED,
            "event_id": f"{row.id}:disabled:{row.disabled_at.isoformat()}",
            "payload": disabled_body(row, last.get(row.id)),
        }
        for row in disabled
        for sub in listeners
        if sub.owner == row.owner and sub.id != row.id and WEBHOOK_DISABLED in sub.events
    ]
    await outbox.insert_deliveries(session, rows)
    return len(rows)
