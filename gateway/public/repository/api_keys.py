"""SQL for the `api_keys` table (public plane). Only hashes of secrets are stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class ApiKeyRow:
    """One API key as stored (the secret itself never is)."""

    id: str
    name: str
    secret_hash: bytes
    tier: str
    user_uid: str | None
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None
    owner_role: str | None
    # Scope names chosen at creation; None: the key follows its owner's role.
    scopes: list[str] | None = None
    # When the owner was disabled (their keys are then refused even if not revoked).
    owner_disabled_at: datetime | None = None


_SELECT = (
    "SELECT k.id, k.name, k.secret_hash, k.tier, k.user_uid, k.created_at, k.rotated_at, "
    "k.revoked_at, u.role, k.scopes, u.disabled_at "
    "FROM api_keys k LEFT JOIN users u ON u.uid = k.user_uid"
)


async def insert(
    session: AsyncSession,
    *,
    key_id: str,
    name: str,
    secret_hash: bytes,
    tier: str,
    user_uid: str | None,
    scopes: list[str] | None = None,
) -> ApiKeyRow:
    """Store a new key."""
    await session.execute(
        text(
            "INSERT INTO api_keys (id, name, secret_hash, tier, user_uid, scopes) "
            "VALUES (:id, :name, :hash, :tier, :uid, :scopes)"
        ),
        {
            "id": key_id,
            "name": name,
            "hash": secret_hash,
            "tier": tier,
            "uid": user_uid,
            "scopes": scopes,
        },
    )
    row = await get(session, key_id)
    assert row is not None
    return row


async def get(session: AsyncSession, key_id: str) -> ApiKeyRow | None:
    """A key by id, revoked or not."""
    result = await session.execute(text(f"{_SELECT} WHERE k.id = :id"), {"id": key_id})
    row = result.one_or_none()
    return None if row is None else ApiKeyRow(*row)


async def list_keys(
    session: AsyncSession, *, user_uid: str | None, all_users: bool = False
) -> list[ApiKeyRow]:
    """Keys of one user (or of every owner for ops), newest first."""
    if all_users:
        result = await session.execute(text(f"{_SELECT} ORDER BY k.created_at DESC, k.id"))
    else:
        result = await session.execute(
            text(f"{_SELECT} WHERE k.user_uid = :uid ORDER BY k.created_at DESC, k.id"),
            {"uid": user_uid},
        )
    return [ApiKeyRow(*row) for row in result.all()]


async def replace_secret(session: AsyncSession, key_id: str, secret_hash: bytes) -> bool:
    """Swap in a new secret hash for a live key; the old secret stops matching at once."""
    result = await session.execute(
        text(
            "UPDATE api_keys SET secret_hash = :hash, rotated_at = now() "
            "WHERE id = :id AND revoked_at IS NULL"
        ),
        {"id": key_id, "hash": secret_hash},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke(session: AsyncSession, key_id: str) -> bool:
    """Mark a key revoked; False when it does not exist or already was."""
    result = await session.execute(
        text("UPDATE api_keys SET revoked_at = now() WHERE id = :id AND revoked_at IS NULL"),
        {"id": key_id},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_all_for(session: AsyncSession, user_uid: str) -> list[str]:
    """Revoke every live key of a user; the ids revoked now."""
    result = await session.execute(
        text(
            "UPDATE api_keys SET revoked_at = now() "
            "WHERE user_uid = :uid AND revoked_at IS NULL RETURNING id"
        ),
        {"uid": user_uid},
    )
    return sorted(str(row[0]) for row in result.all())


async def page(
    session: AsyncSession,
    *,
    user_uid: str | None,
    revoked: bool | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[ApiKeyRow]:
    """Keys of every owner (or one), newest first, after the `(created_at, id)` given."""
    where = ["TRUE"]
    params: dict[str, object] = {"limit": limit}
    if user_uid is not None:
        where.append("k.user_uid = :uid")
        params["uid"] = user_uid
    if revoked is not None:
        where.append("k.revoked_at IS NOT NULL" if revoked else "k.revoked_at IS NULL")
    if after is not None:
        where.append("(k.created_at, k.id) < (:at, :id)")
        params["at"], params["id"] = after
    result = await session.execute(
        text(
            f"{_SELECT} WHERE {' AND '.join(where)} "
            "ORDER BY k.created_at DESC, k.id DESC LIMIT :limit"
        ),
        params,
    )
    return [ApiKeyRow(*row) for row in result.all()]
