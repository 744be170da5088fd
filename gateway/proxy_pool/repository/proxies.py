"""SQL for the proxy inventory: the source of truth the Redis pool is synced from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

metadata = sa.MetaData()

proxies = sa.Table(
    "proxies",
    metadata,
    sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
    sa.Column("url", sa.Text(), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class ProxyRow:
    """One proxy of the inventory; `url` may carry credentials: never log it."""

    id: int
    url: str
    created_at: datetime


async def add_proxy(session: AsyncSession, url: str) -> tuple[int, bool]:
    """Insert `url` if new; returns its id and whether it was created."""
    inserted = await session.execute(
        insert(proxies)
        .values(url=url, created_at=sa.func.now())
        .on_conflict_do_nothing(index_elements=[proxies.c.url])
        .returning(proxies.c.id)
    )
    new_id = inserted.scalar_one_or_none()
    if new_id is not None:
        return int(new_id), True
    existing = await session.execute(sa.select(proxies.c.id).where(proxies.c.url == url))
    return int(existing.scalar_one()), False


async def list_proxies(session: AsyncSession) -> list[ProxyRow]:
    """Every proxy, oldest first."""
    rows = await session.execute(
        sa.select(proxies.c.id, proxies.c.url, proxies.c.created_at).order_by(proxies.c.id)
    )
    return [ProxyRow(int(r.id), str(r.url), r.created_at) for r in rows]


async def remove_proxy(session: AsyncSession, proxy_id: int) -> bool:
    """Delete one proxy by id; False when there was none."""
    deleted = await session.execute(
        sa.delete(proxies).where(proxies.c.id == proxy_id).returning(proxies.c.id)
    )
    return deleted.scalar_one_or_none() is not None
