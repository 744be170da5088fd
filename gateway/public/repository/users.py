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


_COLUMNS = "uid, email, tier, role, created_at, last_seen_at"


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
    """How many users have the stored role `admin`."""
    result = await session.execute(text("SELECT count(*) FROM users WHERE role = 'admin'"))
    return int(result.scalar_one())
