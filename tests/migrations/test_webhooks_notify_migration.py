"""Revision `webhooks_0003`: an insert into any delivery outbox notifies
`gateway_webhooks` (once per statement); the downgrade removes the triggers."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest
from alembic import command

from gateway.migrations.runner import alembic_config, upgrade_to_head
from tests.support.migrations import dsn
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

TRIGGERS = (
    "SELECT tgrelid::regclass::text AS tab FROM pg_trigger"
    " WHERE tgname LIKE '%_webhooks_notify' ORDER BY 1"
)


async def test_outbox_inserts_notify_and_the_downgrade_stops_it(fresh_database: str) -> None:
    await asyncio.to_thread(upgrade_to_head, fresh_database)
    conn = await asyncpg.connect(dsn(fresh_database))
    got: list[str] = []
    try:
        tables = [r["tab"] for r in await conn.fetch(TRIGGERS)]
        assert tables == ["job_events", "parcel_changes", "webhook_deliveries"]
        listener = await asyncpg.connect(dsn(fresh_database))
        await listener.add_listener("gateway_webhooks", lambda *args: got.append(args[3]))
        await conn.execute(
            "INSERT INTO webhook_endpoints (id, owner, url, events, secret)"
            " VALUES ('wh_1', 'o', 'https://x', '{webhook.test}', 's')"
        )
        await conn.execute(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_type, event_id, payload)"
            " SELECT 'msg_' || g, 'wh_1', 'webhook.test', 'e' || g, '{}'"
            " FROM generate_series(1, 50) g"
        )
        # A later notification marks the end of what the insert sent.
        await conn.execute("NOTIFY gateway_webhooks, 'marker'")
        await wait_until(lambda: "marker" in got, what="the marker notification")
        assert got == ["webhook_deliveries", "marker"]  # fifty rows, one notification
        await listener.close()
    finally:
        await conn.close()

    await asyncio.to_thread(command.downgrade, alembic_config(fresh_database), "webhooks_0002")
    conn = await asyncpg.connect(dsn(fresh_database))
    try:
        assert await conn.fetch(TRIGGERS) == []
        assert await conn.fetchval("SELECT to_regproc('gateway_webhooks_notify')") is None
    finally:
        await conn.close()
