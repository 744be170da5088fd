"""SQL for the `users` table (public plane)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class UserRow:
    """One user as stored."""

    uid: str
    email: str | None
    tier: str | None
    role: str
    created_at: datetime
    last_seen_at: datetime
    disabled_at: datetime | None = None


_COLUMNS = "uid, email, tier, role, created_at, last_seen_at, disabled_at"


async def record_seen(session: AsyncSession, uid: str, email: str | None) -> UserRow:
    """Insert the user on first sight, else refresh `last_seen_at` (and email if known)."""
    result = await session.execute(
        text(
            f"INSERT INTO users (uid, email) VALUES (:uid, :email) "  # noqa: S608 - constant columns
            f"ON CONFLICT (uid) DO UPDATE SET last_seen_at = now(), "
            f"email = COALESCE(EXCLUDED.email, users.email) RETURNING {_COLUMNS}"
        ),
        {"uid": uid, "email": email},
    )
    return UserRow(*result.one())


async def get(session: AsyncSession, uid: str) -> UserRow | None:
    """The user, or None."""
    result = await session.execute(
        text(f"SELECT {_COLUMNS} FROM users WHERE uid = :uid"),  # noqa: S608 - constant columns
        {"uid": uid},
    )
    row = result.one_or_none()
    return None if row is None else UserRow(*row)


async def ensure(session: AsyncSession, uid: str) -> None:
    """Create the user if it does not exist yet (ops may provision before first sight)."""
    await session.execute(
        text("INSERT INTO users (uid) VALUES (:uid) ON CONFLICT (uid) DO NOTHING"), {"uid": uid}
    )


async def set_field(session: AsyncSession, uid: str, field: str, value: str) -> UserRow:
    """Set `tier` or `role`, creating the user if needed."""
    if field not in {"tier", "role"}:
        raise ValueError(f"not a settable user field: {field}")
    result = await session.execute(
        text(
            f"INSERT INTO users (uid, {field}) VALUES (:uid, :value) "  # noqa: S608 - field is whitelisted
            f"ON CONFLICT (uid) DO UPDATE SET {field} = EXCLUDED.{field} RETURNING {_COLUMNS}"
        ),
        {"uid": uid, "value": value},
    )
    return UserRow(*result.one())


async def lock_admins(session: AsyncSession) -> None:
    """Serialise changes that could leave no admin (held until the transaction ends)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('gateway.users.admins'))"))


async def count_admins(session: AsyncSession) -> int:
    """How many enabled users have the stored role `admin`."""
    result = await session.execute(
        text("SELECT count(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL")
    )
    return int(result.scalar_one())


async def set_disabled(session: AsyncSession, uid: str, disabled: bool) -> UserRow | None:
    """Disable (keeping the first `disabled_at`) or enable a user; None when unknown."""
    value = "COALESCE(disabled_at, now())" if disabled else "NULL"
    result = await session.execute(
        text(
            f"UPDATE users SET disabled_at = {value} WHERE uid = :uid "  # noqa: S608 - constant
            f"RETURNING {_COLUMNS}"
        ),
        {"uid": uid},
    )
    row = result.one_or_none()
    return None if row is None else UserRow(*row)


def _like_prefix(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def search(
    session: AsyncSession,
    *,
    query: str | None,
    role: str | None,
    disabled: bool | None,
    after_uid: str | None,
    limit: int,
) -> list[UserRow]:
    """Users by uid, ascending, after `after_uid`: `query` is a uid or email prefix
    (the email case-insensitively), `role` and `disabled` narrow further."""
    where = ["TRUE"]
    params: dict[str, object] = {"limit": limit}
    if query:
        where.append("(uid LIKE :prefix OR lower(email) LIKE lower(:prefix))")
        params["prefix"] = _like_prefix(query)
    if role is not None:
        where.append("role = :role")
        params["role"] = role
    if disabled is not None:
        where.append("disabled_at IS NOT NULL" if disabled else "disabled_at IS NULL")
    if after_uid is not None:
        where.append("uid > :after")
        params["after"] = after_uid
    result = await session.execute(
        text(
            f"SELECT {_COLUMNS} FROM users WHERE {' AND '.join(where)} "  # noqa: S608 - fixed clauses
            "ORDER BY uid LIMIT :limit"
        ),
        params,
    )
    return [UserRow(*row) for row in result.all()]
