"""The channel that wakes delivery loops, and a notification for changes no trigger sees.

Inserts into the outbox tables notify through the triggers of migration `webhooks_0003`;
a change that makes existing deliveries due (a redelivery, an endpoint enabled again) is
an UPDATE, so it notifies here, in its own transaction (sent at commit, like a trigger's).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "gateway_webhooks"


async def wake_dispatchers(session: AsyncSession, what: str = "webhook_deliveries") -> None:
    """Notify every replica's delivery loop when this transaction commits."""
    await session.execute(
        sa.text("SELECT pg_notify(:channel, :what)"), {"channel": CHANNEL, "what": what}
    )
