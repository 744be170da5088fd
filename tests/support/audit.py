"""The audit actor of test set-up calls, and reading the trail back."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.actor import Actor
from gateway.audit.service import AuditLog

# What test set-up (keys, roles, tokens made directly through the services) acts as.
TEST_ACTOR = Actor(principal="test:setup", role="admin", request_id="test-setup")


def offline_audit() -> AuditLog:
    """An audit log bound to no database, for code paths that record nothing."""
    return AuditLog(async_sessionmaker())


async def audit_rows(sessionmaker: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    """Every audit row, in chain order, as plain dicts."""
    async with sessionmaker() as session:
        result = await session.execute(sa.text("SELECT * FROM audit_log ORDER BY seq"))
        return [dict(r._mapping) for r in result]
