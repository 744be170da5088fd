"""Users of the public port: recorded on first sight, tier and role set by ops.

Every bearer-token user (Firebase, OIDC, HS256) gets a row keyed by its user id: the
Firebase uid as is, `<issuer namespace>:<sub>` for the others
(`gateway/public/tokens/identity.py`). A user's row is upserted at most once per
`USER_CACHE_S` per process (so `last_seen_at` has that resolution and a hot user costs
no database write), which also bounds how long a `gateway users set-tier` takes to
reach every process.

Tier and role come from the token when it claims them (Firebase custom claims `tier`
and `role`, set only through the Admin SDK by trusted backends; for other issuers the
claim paths the operator configured): they win over the table. Otherwise the table's
values, else `DEFAULT_TIER` and role `user`. A claimed tier that is not configured is
ignored (the table decides).

A disabled user (`disable`, from the admin API or `gateway users disable`) has every key
revoked in the same transaction, and their bearer tokens are refused (401
`user_disabled`) from the moment `disable` returns, on every gateway process: the change
is announced through `gateway/public/revocations.py`, which waits for every process to
drop what it cached. Enabling them again lets their tokens in; revoked keys stay revoked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.actions import Action
from gateway.audit.actor import Actor
from gateway.audit.service import AuditLog
from gateway.core.errors import Conflict, NotFound, Unauthorized
from gateway.core.settings.tiers import Tiers
from gateway.kit.field_errors import invalid_field
from gateway.kit.outage import session_scope
from gateway.kit.single_flight import SingleFlight
from gateway.kit.ttl_cache import TtlCache
from gateway.public.principal import Principal, PrincipalKind, Role, parse_role
from gateway.public.repository import api_keys as keys_repo
from gateway.public.repository import users as repo
from gateway.public.repository.users import UserRow
from gateway.public.revocations import EVERYTHING, RevocationFeed, user_subject
from gateway.public.tokens.identity import Identity, firebase_identity


class LastAdmin(Conflict):
    """The change would leave no user with the admin role."""

    slug = "last-admin"
    title = "The last admin cannot be demoted"


class UserDisabled(Unauthorized):
    """The credential belongs to a disabled user."""

    def __init__(self) -> None:
        super().__init__("This user is disabled", reason="user_disabled")


class UserService:
    """First-sight recording and ops changes of users."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        tiers: Tiers,
        cache_s: float,
        *,
        on_role_change: Callable[[], None] | None = None,
        feed: RevocationFeed | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        # Disabling and enabling are announced to every process (None: this one only).
        self._feed = feed
        # Told after a role change, so this process's verified API keys are re-read
        # with their owner's new role at once (`ApiKeyService.forget_all`).
        self._on_role_change = on_role_change
        self._audit = AuditLog(sessionmaker)
        self._tiers = tiers
        self._cache_s = cache_s
        self._seen: TtlCache[str, UserRow] = TtlCache(100_000)
        # The principal last built per user, with the claims and row it came from: a
        # hot token brings the same claims object (the verifier caches it) and the
        # same row until either changes, so its principal is built once.
        self._built: dict[str, tuple[object, UserRow, Principal]] = {}
        # Requests in flight when a user's entry expires share one upsert.
        self._recording: SingleFlight[str, UserRow] = SingleFlight()
        self._changes = 0  # bumped by set-tier/set-role (see `ApiKeyService._changes`)

    async def record_seen(self, uid: str, email: str | None) -> UserRow:
        """The stored user, inserted on first sight."""
        cached = self._seen.get(uid)
        if cached is not None:
            return cached
        return await self._recording.run(uid, lambda: self._record(uid, email))

    async def _record(self, uid: str, email: str | None) -> UserRow:
        changes = self._changes
        async with session_scope(self._sessionmaker, write=True) as session:
            row = await repo.record_seen(session, uid, email)
        if (
            self._cache_s > 0
            and changes == self._changes
            and (self._feed is None or self._feed.live)
        ):
            self._seen.put(uid, row, self._cache_s)
        return row

    async def principal_for(self, claims: dict[str, Any]) -> Principal:
        """The principal of a verified Firebase token."""
        return await self.principal_for_identity(firebase_identity(claims))

    async def principal_for_identity(self, identity: Identity) -> Principal:
        """The principal of a verified token's holder (its row recorded on first sight)."""
        uid = identity.uid
        row = await self.record_seen(uid, identity.email)
        if row.disabled_at is not None:
            raise UserDisabled
        built = self._built.get(uid)
        if built is not None and built[0] is identity.claims and built[1] is row:
            return built[2]
        claimed_tier = identity.tier
        tier_name = (
            claimed_tier if claimed_tier is not None and claimed_tier in self._tiers else row.tier
        )
        role = identity.role if identity.role is not None else parse_role(row.role)
        principal = Principal(
            kind=PrincipalKind.USER,
            id=uid,
            tier=self._tiers.get(tier_name),
            role=role,
            user_uid=uid,
            email=row.email,
            claims=identity.claims,
        )
        if len(self._built) > 100_000:
            self._built.clear()
        self._built[uid] = (identity.claims, row, principal)
        return principal

    async def get(self, uid: str) -> UserRow | None:
        """The stored user, if any."""
        async with session_scope(self._sessionmaker) as session:
            return await repo.get(session, uid)

    async def set_tier(self, uid: str, tier: str, *, actor: Actor) -> UserRow:
        """Set a user's tier (creating the user if needed)."""
        if tier not in self._tiers:
            raise invalid_field("tier", msg=f"unknown tier; one of {self._tiers.names()}")
        row = await self._set(uid, "tier", tier, actor, Action.USER_SET_TIER)
        await self._changed(uid)
        return row

    async def set_role(self, uid: str, role: str, *, actor: Actor) -> UserRow:
        """Set a user's role (creating the user if needed); never demotes the last admin."""
        if role not in {r.value for r in Role}:
            raise invalid_field("role", msg=f"role must be one of {', '.join(r for r in Role)}")
        row = await self._set(uid, "role", role, actor, Action.USER_SET_ROLE)
        # Every process sees the new role at once (a demoted admin's keys lose admin
        # rights everywhere before this returns, not within API_KEY_CACHE_S).
        await self._changed(uid)
        return row

    async def _set(self, uid: str, field: str, value: str, actor: Actor, action: Action) -> UserRow:
        async with session_scope(self._sessionmaker, write=True) as session:
            if field == "role" and value != Role.ADMIN:
                # Two admins demoting each other at once must not both succeed.
                await repo.lock_admins(session)
            old = await repo.get(session, uid)
            if (
                field == "role"
                and value != Role.ADMIN
                and old is not None
                and old.role == Role.ADMIN
                and old.disabled_at is None
                and await repo.count_admins(session) <= 1
            ):
                raise LastAdmin(f"{uid} is the last admin: make another user admin first")
            row = await repo.set_field(session, uid, field, value)
            await self._audit.record(
                session,
                actor,
                action,
                f"user:{uid}",
                before=None if old is None else {field: getattr(old, field)},
                after={field: getattr(row, field)},
            )
        self._changes += 1
        self._seen.pop(uid)
        return row

    async def search(
        self,
        *,
        query: str | None = None,
        role: str | None = None,
        disabled: bool | None = None,
        after_uid: str | None = None,
        limit: int = 100,
    ) -> list[UserRow]:
        """Users by uid (ascending) matching a uid or email prefix and the filters."""
        async with session_scope(self._sessionmaker) as session:
            return await repo.search(
                session,
                query=query,
                role=role,
                disabled=disabled,
                after_uid=after_uid,
                limit=limit,
            )

    async def disable(self, uid: str, *, actor: Actor) -> UserRow:
        """Disable a user and revoke their keys, on every process at once; idempotent.

        Refused for the last enabled admin (409 `last-admin`), 404 for an unknown user.
        Disabling a disabled user changes nothing and records nothing, but still
        announces (a retry after a replica missed the first announcement heals it).
        """
        async with session_scope(self._sessionmaker, write=True) as session:
            await repo.lock_admins(session)
            old = await repo.get(session, uid)
            if old is None:
                raise NotFound(f"No user {uid}")
            if (
                old.disabled_at is None
                and old.role == Role.ADMIN
                and await repo.count_admins(session) <= 1
            ):
                raise LastAdmin(f"{uid} is the last admin: make another user admin first")
            row = await repo.set_disabled(session, uid, True)
            assert row is not None
            if old.disabled_at is None:
                revoked = await keys_repo.revoke_all_for(session, uid)
                await self._audit.record(
                    session,
                    actor,
                    Action.USER_DISABLE,
                    f"user:{uid}",
                    before={"disabled": False},
                    after={"disabled": True, "revoked_keys": revoked},
                )
        await self._changed(uid)
        return row

    async def enable(self, uid: str, *, actor: Actor) -> UserRow:
        """Let a disabled user in again (their revoked keys stay revoked); idempotent."""
        async with session_scope(self._sessionmaker, write=True) as session:
            old = await repo.get(session, uid)
            if old is None:
                raise NotFound(f"No user {uid}")
            row = await repo.set_disabled(session, uid, False)
            assert row is not None
            if old.disabled_at is not None:
                await self._audit.record(
                    session,
                    actor,
                    Action.USER_ENABLE,
                    f"user:{uid}",
                    before={"disabled": True},
                    after={"disabled": False},
                )
        await self._changed(uid)
        return row

    async def _changed(self, uid: str) -> None:
        self.forget(user_subject(uid))
        if self._on_role_change is not None:
            self._on_role_change()  # this process's verified keys (the feed: the others')
        if self._feed is not None:
            await self._feed.announce(user_subject(uid))

    def forget(self, subject: str) -> None:
        """Drop what this process cached about a user (`user:<uid>`) or everyone (`*`)."""
        self._changes += 1
        if subject == EVERYTHING:
            self._seen.clear()
            self._built.clear()
        elif subject.startswith("user:"):
            uid = subject.removeprefix("user:")
            self._seen.pop(uid)
            self._built.pop(uid, None)
