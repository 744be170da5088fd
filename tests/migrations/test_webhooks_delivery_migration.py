"""Revision `webhooks_0002`: job events written before it are history (not delivered),
every later one is pending for the fan-out; deliveries gain the `sending` state and a
lease; the downgrade undoes it."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest
from alembic import command

from gateway.migrations.runner import alembic_config, upgrade_to_head
from tests.support.migrations import dsn

pytestmark = pytest.mark.integration

JOB = (
    "INSERT INTO jobs (id, owner, kind, audience, state, total, succeeded, failed, cancelled,"
    " expired, priority, cost_per_item, created_at, updated_at, event_seq, reconcile_from,"
    " download_gen) VALUES ('job_1', 'o', 'parcel_refresh', 'parcel', 'running', 1, 0, 0, 0,"
    " 0, 0, 1, now(), now(), 2, 0, 0)"
)


EVENT = (
    "INSERT INTO job_events (job_id, seq, type, data, created_at)"
    " VALUES ('job_1', $1, 'job.progress', '{}', now())"
)


async def test_old_events_are_history_and_new_ones_pending(fresh_database: str) -> None:
    config = alembic_config(fresh_database)
    await asyncio.to_thread(command.upgrade, config, "webhooks_0001")
    conn = await asyncpg.connect(dsn(fresh_database))
    try:
        await conn.execute(JOB)
        await conn.execute(EVENT, 1)
        await asyncio.to_thread(upgrade_to_head, fresh_database)
        await conn.execute(EVENT, 2)  # written as the jobs code writes: no flag given
        rows = await conn.fetch("SELECT seq, webhooks_pending FROM job_events ORDER BY seq")
        assert [(r["seq"], r["webhooks_pending"]) for r in rows] == [(1, False), (2, True)]
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_job_events_webhooks_pending'"
        )
        assert "WHERE webhooks_pending" in index
        await conn.execute(
            "INSERT INTO webhook_endpoints (id, owner, url, events, secret)"
            " VALUES ('wh_1', 'o', 'https://x', '{job.progress}', 's')"
        )
        await conn.execute(
            "INSERT INTO webhook_deliveries (id, endpoint_id, event_type, event_id, payload,"
            " state, lease_until) VALUES ('msg_1', 'wh_1', 'job.progress', 'job_1:2', '{}',"
            " 'sending', now())"
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE webhook_deliveries SET state = 'lost'")
    finally:
        await conn.close()

    await asyncio.to_thread(command.downgrade, config, "webhooks_0001")
    conn = await asyncpg.connect(dsn(fresh_database))
    try:
        # A delivery being sent when the lease went away is pending again.
        assert await conn.fetchval("SELECT state FROM webhook_deliveries") == "pending"
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name IN ('job_events', 'webhook_deliveries')"
        )
        names = {c["column_name"] for c in columns}
        assert not names & {"webhooks_pending", "lease_until"}
    finally:
        await conn.close()
