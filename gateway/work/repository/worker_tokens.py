"""SQL for `worker_tokens` (hashed credentials of the worker ports)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

metadata = sa.MetaData()

worker_tokens = sa.Table(
    "worker_tokens",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("audience", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("token_hash", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
)


@dataclass(frozen=True)
class TokenRow:
    """One stored token (never the token itself)."""

    id: int
    name: str
    audience: str
    role: str
    token_hash: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def _row(r: sa.Row[tuple[object, ...]]) -> TokenRow:
    m = r._mapping
    return TokenRow(
        id=m["id"],
        name=m["name"],
        audience=m["audience"],
        role=m["role"],
        token_hash=m["token_hash"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
        last_used_at=m["last_used_at"],
    )


async def insert_token(
    session: AsyncSession, *, name: str, audience: str, role: str, token_hash: str
) -> bool:
    """Store a new token; False when a live token already has this name."""
    stmt = (
        insert(worker_tokens)
        .values(name=name, audience=audience, role=role, token_hash=token_hash)
        .on_conflict_do_nothing(
            index_elements=["name"], index_where=worker_tokens.c.revoked_at.is_(None)
        )
        .returning(worker_tokens.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def find_by_hash(session: AsyncSession, token_hash: str) -> TokenRow | None:
    """The token with this hash, revoked or not."""
    stmt = sa.select(worker_tokens).where(worker_tokens.c.token_hash == token_hash)
    row = (await session.execute(stmt)).first()
    return None if row is None else _row(row)


async def list_tokens(session: AsyncSession, *, include_revoked: bool) -> list[TokenRow]:
    """Every token, newest first."""
    stmt = sa.select(worker_tokens).order_by(worker_tokens.c.created_at.desc())
    if not include_revoked:
        stmt = stmt.where(worker_tokens.c.revoked_at.is_(None))
    return [_row(r) for r in (await session.execute(stmt)).all()]


async def revoke_by_name(session: AsyncSession, name: str) -> int:
    """Revoke the live token with this name; returns rows changed (0 or 1)."""
    stmt = (
        sa.update(worker_tokens)
        .where(worker_tokens.c.name == name, worker_tokens.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
    )
    result = await session.execute(stmt)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def name_exists(session: AsyncSession, name: str) -> bool:
    """Whether any token (live or revoked) ever had this name."""
    stmt = sa.select(sa.literal(1)).where(worker_tokens.c.name == name).limit(1)
    return (await session.execute(stmt)).first() is not None


async def touch(session: AsyncSession, token_id: int) -> None:
    """Record that a token was used now."""
    stmt = (
        sa.update(worker_tokens)
        .where(worker_tokens.c.id == token_id)
        .values(last_used_at=sa.func.now())
    )
    await session.execute(stmt)
