"""API keys: random, prefixed, stored as hashes, compared in constant time.

Format: `tlk_<id>_<secret>` where `<id>` (12 hex) is the public handle used to list,
rotate and revoke, and `<secret>` is 256 bits from `secrets`. The prefix makes leaked
keys recognisable to secret scanners. Only SHA-256(key) is stored: a 256-bit random
secret cannot be brute-forced, so a slow password hash would only burn CPU per request.
Verification looks the row up by id and compares hashes with `hmac.compare_digest`.

Verified keys are cached in the process for `API_KEY_CACHE_S` (default 5 s) so a hot
key costs no database round trip; rotation and revocation clear this process's cache at
once, and other gateway processes honour them within that time. When an entry expires,
the requests in flight for that key share one lookup. Disabling a user is announced to
every process (`gateway/public/revocations.py`), which drop their verified keys at once;
a key of a disabled owner is refused even if it was somehow not revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.actions import Action
from gateway.audit.actor import Actor
from gateway.audit.service import AuditLog
from gateway.core.errors import Conflict, Forbidden, NotFound, Unauthorized
from gateway.core.settings.tiers import Tiers
from gateway.kit.field_errors import invalid_field
from gateway.kit.outage import session_scope
from gateway.kit.single_flight import SingleFlight
from gateway.kit.ttl_cache import TtlCache
from gateway.public.permissions import Scope, grantable
from gateway.public.principal import Principal, PrincipalKind, Role, parse_role
from gateway.public.repository import api_keys as repo
from gateway.public.repository import users as users_repo
from gateway.public.repository.api_keys import ApiKeyRow
from gateway.public.revocations import RevocationFeed, key_subject

PREFIX = "tlk_"
_KEY_RE = re.compile(r"^tlk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_NAME_RE = re.compile(r"^[\w .:@/-]{1,64}$")


def new_key() -> tuple[str, str]:
    """A fresh (key id, full key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> bytes:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).digest()


def _target(key_id: str) -> str:
    return f"api_key:{key_id}"


def _summary(row: ApiKeyRow) -> dict[str, object]:
    """What the audit trail keeps of a key: never its secret nor the secret's hash."""
    return {
        "name": row.name,
        "tier": row.tier,
        "user_uid": row.user_uid,
        "scopes": row.scopes,
        "revoked": row.revoked_at is not None,
    }


@dataclass(frozen=True)
class IssuedKey:
    """A key as shown once at creation or rotation."""

    row: ApiKeyRow
    secret: str


class ApiKeyService:
    """Create, list, rotate, revoke and verify API keys."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        tiers: Tiers,
        cache_s: float,
        *,
        feed: RevocationFeed | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        # While this process may miss announcements, it caches no verified key.
        self._feed = feed
        self._audit = AuditLog(sessionmaker)
        self._tiers = tiers
        self._cache_s = cache_s
        self._cache: TtlCache[str, tuple[bytes, Principal]] = TtlCache(100_000)
        self._lookups: SingleFlight[str, ApiKeyRow | None] = SingleFlight()
        # Bumped by rotate/revoke, so a lookup that read the row before the change does
        # not cache what it read.
        self._changes = 0

    def _check_tier(self, tier: str) -> None:
        if tier not in self._tiers:
            raise invalid_field("body", "tier", msg="unknown tier")

    @staticmethod
    def _check_name(name: str) -> None:
        if not _NAME_RE.match(name):
            raise invalid_field("body", "name", msg="1-64 letters, digits, spaces or . : @ / - _")

    async def create(
        self,
        *,
        name: str,
        tier: str,
        user_uid: str | None,
        actor: Actor,
        scopes: frozenset[Scope] | None = None,
        creator: frozenset[Scope] | None = None,
    ) -> IssuedKey:
        """Store a new key for a user (or a service when `user_uid` is None).

        `scopes` are the key's (None: follow the owner's role); `creator` the scopes of
        the credential creating it when that is itself limited (another key). Scopes
        beyond the owner's stored role or the creator's are refused (403).
        """
        self._check_name(name)
        self._check_tier(tier)
        key_id, key = new_key()
        async with session_scope(self._sessionmaker, write=True) as session:
            owner_role = Role.SERVICE
            if user_uid is not None:
                await users_repo.ensure(session, user_uid)
                owner = await users_repo.get(session, user_uid)
                if owner is not None and owner.disabled_at is not None:
                    raise Conflict(f"{user_uid} is disabled: enable the user first")
                owner_role = parse_role(owner.role if owner else None)
            stored = grantable(scopes, owner_role=owner_role, creator=creator)
            row = await repo.insert(
                session,
                key_id=key_id,
                name=name,
                secret_hash=hash_key(key),
                tier=tier,
                user_uid=user_uid,
                scopes=None if stored is None else sorted(stored),
            )
            await self._audit.record(
                session, actor, Action.API_KEY_CREATE, _target(key_id), after=_summary(row)
            )
        return IssuedKey(row, key)

    async def list_for(self, user_uid: str | None, *, all_users: bool = False) -> list[ApiKeyRow]:
        """Keys of one user, or every key (ops)."""
        async with session_scope(self._sessionmaker) as session:
            return await repo.list_keys(session, user_uid=user_uid, all_users=all_users)

    async def _owned(self, session: AsyncSession, key_id: str, owner: str | None) -> ApiKeyRow:
        row = await repo.get(session, key_id)
        # Someone else's key is "not found", so ids cannot be probed across users.
        if row is None or (owner is not None and row.user_uid != owner):
            raise NotFound(f"No API key {key_id}")
        return row

    async def rotate(self, key_id: str, *, owner: str | None, actor: Actor) -> IssuedKey:
        """Give a live key a new secret; the old secret stops working at once."""
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        async with session_scope(self._sessionmaker, write=True) as session:
            await self._owned(session, key_id, owner)
            if not await repo.replace_secret(session, key_id, hash_key(key)):
                raise NotFound(f"API key {key_id} is revoked")
            row = await repo.get(session, key_id)
            assert row is not None
            await self._audit.record(
                session, actor, Action.API_KEY_ROTATE, _target(key_id), after=_summary(row)
            )
        self._forget(key_id)
        return IssuedKey(row, key)

    async def page(
        self,
        *,
        user_uid: str | None,
        revoked: bool | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[ApiKeyRow]:
        """Keys of every owner (or one), newest first, keyset-paged (the admin API)."""
        async with session_scope(self._sessionmaker) as session:
            return await repo.page(
                session, user_uid=user_uid, revoked=revoked, after=after, limit=limit
            )

    async def revoke(
        self, key_id: str, *, owner: str | None, actor: Actor, idempotent: bool = False
    ) -> ApiKeyRow:
        """Revoke a key for good; `idempotent`: a revoked key is answered as it is
        (nothing recorded), instead of a 404."""
        async with session_scope(self._sessionmaker, write=True) as session:
            before = await self._owned(session, key_id, owner)
            if not await repo.revoke(session, key_id):
                if idempotent:
                    return before
                raise NotFound(f"API key {key_id} is already revoked")
            row = await repo.get(session, key_id)
            assert row is not None
            await self._audit.record(
                session,
                actor,
                Action.API_KEY_REVOKE,
                _target(key_id),
                before=_summary(before),
                after=_summary(row),
            )
        self._forget(key_id)
        if self._feed is not None:
            # Every other process drops it too before this returns (not within
            # API_KEY_CACHE_S): a leaked key stops working everywhere at once.
            await self._feed.announce(key_subject(key_id))
        return row

    def _forget(self, key_id: str) -> None:
        self._changes += 1
        self._cache.pop(key_id)

    def forget(self, subject: str) -> None:
        """An announcement (`gateway/public/revocations.py`): one key revoked, or a
        user's keys (or all) changed; keys are not indexed by owner, so a user's change
        drops every verified key."""
        if subject.startswith("key:"):
            self._forget(subject.removeprefix("key:"))
        else:
            self.forget_all()

    def forget_all(self) -> None:
        """Drop every verified key of this process (an owner's role changed: each key's
        scopes are cut down to its owner's role when it is next verified)."""
        self._changes += 1
        self._cache.clear()

    async def authenticate(self, key: str) -> Principal:
        """The principal of a valid key, or `Unauthorized`."""
        match = _KEY_RE.match(key)
        if match is None:
            raise Unauthorized("The API key is malformed", reason="malformed_api_key")
        key_id = match.group(1)
        digest = hash_key(key)
        cached = self._cache.get(key_id)
        if cached is not None:
            if hmac.compare_digest(cached[0], digest):
                return cached[1]
            raise Unauthorized("The API key is not valid", reason="invalid_api_key")
        row = await self._lookups.run(key_id, lambda: self._load(key_id))
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            raise Unauthorized("The API key is not valid", reason="invalid_api_key")
        if row.revoked_at is not None:
            raise Unauthorized("The API key has been revoked", reason="api_key_revoked")
        if row.owner_disabled_at is not None:
            raise Unauthorized("This user is disabled", reason="user_disabled")
        return self._principal(row)

    async def _load(self, key_id: str) -> ApiKeyRow | None:
        """The stored key (one query for every concurrent asker), cached when usable."""
        changes = self._changes
        async with session_scope(self._sessionmaker) as session:
            row = await repo.get(session, key_id)
        if (
            row is not None
            and row.revoked_at is None
            and row.owner_disabled_at is None
            and self._cache_s > 0
            and changes == self._changes
            and (self._feed is None or self._feed.live)
        ):
            self._cache.put(key_id, (row.secret_hash, self._principal(row)), self._cache_s)
        return row

    def _principal(self, row: ApiKeyRow) -> Principal:
        return Principal(
            kind=PrincipalKind.API_KEY,
            id=row.id,
            tier=self._tiers.get(row.tier),
            role=parse_role(row.owner_role) if row.user_uid else Role.SERVICE,
            user_uid=row.user_uid,
            key_scopes=None if row.scopes is None else frozenset(row.scopes),
        )

    def require_owner(self, principal: Principal) -> str:
        """The user whose keys the caller manages; services cannot manage keys."""
        if principal.user_uid is None:
            raise Forbidden("Only a user (or a user's key) can manage API keys")
        return principal.user_uid
