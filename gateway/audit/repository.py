"""SQL for `audit_log` (created by migration `audit_0001`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.chain import ChainedRow

metadata = sa.MetaData()

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("actor_role", sa.Text, nullable=False),
    sa.Column("actor_user", sa.Text),
    sa.Column("ip", sa.Text),
    sa.Column("request_id", sa.Text),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    # SQL NULL for "no summary" (not JSON null), so `before IS NULL` means what it says.
    sa.Column("before", JSONB(none_as_null=True)),
    sa.Column("after", JSONB(none_as_null=True)),
    sa.Column("prev_hash", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False),
)

# One lock for the whole trail: appends are rare (operator actions), and a single
# writer at a time is what makes the chain linear across every replica. A transaction
# lock, so it is released by the commit or rollback of the action it belongs to.
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended('gw.audit', 0))")
_HEAD = sa.text(
    "SELECT last.seq, last.hash, clock_timestamp() AS now FROM (SELECT 1) AS one"
    " LEFT JOIN LATERAL (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) AS last"
    " ON true"
)


def _row(r: sa.Row[Any]) -> ChainedRow:
    return ChainedRow(**r._mapping)


async def lock_head(session: AsyncSession) -> tuple[int, str | None, datetime]:
    """Take the append lock; the last row's (seq, hash), 0 and None when empty, and now.

    The time is read after the lock, so `at` never goes backwards along `seq`.
    """
    await session.execute(_LOCK)
    seq, last_hash, now = (await session.execute(_HEAD)).one()
    return int(seq or 0), last_hash, now


async def append(session: AsyncSession, row: ChainedRow) -> None:
    """Insert one chained row (the caller holds the lock)."""
    await session.execute(sa.insert(audit_log).values(**row.__dict__))


async def page(
    session: AsyncSession,
    *,
    actor: str | None,
    action: str | None,
    action_family: str | None,
    target: str | None,
    since: datetime | None,
    before_seq: int | None,
    limit: int,
) -> list[ChainedRow]:
    """Rows matching the filters, newest first, below `before_seq` (the cursor)."""
    t = audit_log.c
    stmt = sa.select(audit_log).order_by(t.seq.desc()).limit(limit)
    if actor is not None:
        # The principal itself, or any key of that user.
        stmt = stmt.where(sa.or_(t.actor == actor, t.actor_user == actor))
    if action is not None:
        stmt = stmt.where(t.action == action)
    if action_family is not None:
        stmt = stmt.where(t.action.startswith(action_family + ".", autoescape=True))
    if target is not None:
        stmt = stmt.where(t.target == target)
    if since is not None:
        stmt = stmt.where(t.at >= since)
    if before_seq is not None:
        stmt = stmt.where(t.seq < before_seq)
    return [_row(r) for r in (await session.execute(stmt)).all()]


async def after(session: AsyncSession, seq: int, limit: int) -> list[ChainedRow]:
    """Up to `limit` rows after `seq`, in chain order (for verification)."""
    stmt = sa.select(audit_log).where(audit_log.c.seq > seq).order_by(audit_log.c.seq).limit(limit)
    return [_row(r) for r in (await session.execute(stmt)).all()]
