"""`/v1/admin/users`: find, show, re-tier, re-role, disable and enable users (admin role).

The same `UserService` methods `gateway users ...` calls, so the API and the CLI cannot
disagree; each change is audited by the service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from gateway.api.external.public_deps import ActorDep, Caller, PlaneDep
from gateway.api.external.requires import requires
from gateway.core.errors import NotFound
from gateway.kit.cursor import decode_cursor, encode_cursor
from gateway.public.permissions import Scope
from gateway.public.principal import Role
from gateway.public.repository.users import UserRow

router = APIRouter(prefix="/v1/admin", tags=["admin"])

# A user id as the gateway makes them: a Firebase uid or `<issuer>:<sub>`, printable.
# The issuer part holds `/` (`auth.example.com/realms/main:5b1c...`), so the routes take
# the rest of the path (`{uid:path}`); the routes with a suffix come before `show_user`,
# whose path would otherwise swallow theirs.
_UID = r"^[\x21-\x7e]{1,256}$"
UidPath = Annotated[str, Path(pattern=_UID, description="Firebase uid or `<issuer>:<sub>`")]


class UserOut(BaseModel):
    """A user as stored (the tier and role a token claims may override these)."""

    uid: str
    email: str | None
    tier: str | None = Field(description="null: the default tier")
    role: str
    created_at: datetime
    last_seen_at: datetime
    disabled_at: datetime | None

    @classmethod
    def of(cls, row: UserRow) -> UserOut:
        """The response shape of a stored user."""
        return cls(**row.__dict__)


class UserList(BaseModel):
    """A page of users by uid; `next_cursor` is null on the last page."""

    items: list[UserOut]
    next_cursor: str | None


class TierIn(BaseModel):
    """The tier to give a user."""

    tier: str = Field(min_length=1, max_length=64)


class RoleIn(BaseModel):
    """The role to give a user."""

    role: Role


@router.get("/users", summary="Find users by uid or email prefix (admin role)")
async def list_users(
    admin: Annotated[Caller, requires(Scope.USERS_ADMIN)],
    plane: PlaneDep,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=256, pattern=r"^[\x20-\x7e]+$", description="Prefix"),
    ] = None,
    role: Role | None = None,
    disabled: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> UserList:
    """Users whose uid or email starts with `q`, by uid."""
    after = None if not cursor else str(decode_cursor(cursor, str))
    rows = await plane.users.search(
        query=q, role=role, disabled=disabled, after_uid=after, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return UserList(
        items=[UserOut.of(r) for r in rows],
        next_cursor=encode_cursor(rows[-1].uid) if more else None,
    )


@router.put("/users/{uid:path}/tier", summary="Set a user's tier (admin role)")
async def set_tier(
    uid: UidPath,
    body: TierIn,
    admin: Annotated[Caller, requires(Scope.USERS_ADMIN)],
    actor: ActorDep,
    plane: PlaneDep,
) -> UserOut:
    """Set the tier (creating the user if needed), as `gateway users set-tier`."""
    return UserOut.of(await plane.users.set_tier(uid, body.tier, actor=actor))


@router.put("/users/{uid:path}/role", summary="Set a user's role (admin role)")
async def set_role(
    uid: UidPath,
    body: RoleIn,
    admin: Annotated[Caller, requires(Scope.USERS_ADMIN)],
    actor: ActorDep,
    plane: PlaneDep,
) -> UserOut:
    """Set the role, as `gateway users set-role`; 409 for the last admin."""
    return UserOut.of(await plane.users.set_role(uid, body.role.value, actor=actor))


@router.post(
    "/users/{uid:path}/disable", summary="Disable a user, revoking their keys (admin role)"
)
async def disable_user(
    uid: UidPath,
    admin: Annotated[Caller, requires(Scope.USERS_ADMIN)],
    actor: ActorDep,
    plane: PlaneDep,
) -> UserOut:
    """Refuse the user's tokens and revoke their keys, on every replica before answering."""
    return UserOut.of(await plane.users.disable(uid, actor=actor))


@router.post("/users/{uid:path}/enable", summary="Enable a disabled user (admin role)")
async def enable_user(
    uid: UidPath,
    admin: Annotated[Caller, requires(Scope.USERS_ADMIN)],
    actor: ActorDep,
    plane: PlaneDep,
) -> UserOut:
    """Accept the user's tokens again (revoked keys stay revoked)."""
    return UserOut.of(await plane.users.enable(uid, actor=actor))


@router.get("/users/{uid:path}", summary="One user (admin role)")
async def show_user(
    uid: UidPath, admin: Annotated[Caller, requires(Scope.USERS_ADMIN)], plane: PlaneDep
) -> UserOut:
    """The stored user, or 404."""
    row = await plane.users.get(uid)
    if row is None:
        raise NotFound(f"No user {uid}")
    return UserOut.of(row)
