"""Worker tokens: creation, revocation and per-request verification.

Storage choice: tokens live in PostgreSQL (durable, auditable, survive a Redis flush),
stored only as SHA-256 hashes; a token is 256 random bits, so a fast hash suffices.
Verification must not make every heartbeat depend on PostgreSQL (a database outage
would otherwise expire every lease), so verified tokens are cached in-process:

* an entry is reused while younger than `WORKER_TOKEN_CACHE_S`, and past that when
  PostgreSQL is unreachable (heartbeats and leasing keep working during an outage);
* revocation bumps a Redis epoch that every verification reads (one GET), and a changed
  epoch clears the cache, so a revoked token fails on every replica at once.

The stored hash is compared with `hmac.compare_digest` after the indexed lookup, so the
comparison itself leaks no timing about the token.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.audit.actions import Action
from gateway.audit.actor import Actor
from gateway.audit.service import AuditLog
from gateway.core.errors import Conflict, DependencyUnavailable, NotFound, Unauthorized
from gateway.kit.outage import database_guard, is_database_down, redis_guard
from gateway.kit.ttl_cache import TtlCache
from gateway.work.repository import worker_tokens as repo

log = structlog.get_logger("gateway.work.tokens")

TOKEN_PREFIX = "gwt_"  # noqa: S105 - a public prefix, not a secret
_TOUCH_EVERY_S = 60.0


class Role(enum.StrEnum):
    """`producer` tokens may also enqueue tasks."""

    WORKER = "worker"
    PRODUCER = "producer"


@dataclass(frozen=True)
class WorkerPrincipal:
    """Who is calling a worker port, as established by `X-Worker-Token`."""

    token_id: int
    name: str
    audience: str
    role: Role

    @property
    def is_producer(self) -> bool:
        """Whether this token may enqueue."""
        return self.role is Role.PRODUCER


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(audience: str) -> str:
    """A fresh token; the audience in the prefix only helps humans tell them apart."""
    return f"{TOKEN_PREFIX}{audience}_{secrets.token_urlsafe(32)}"


class TokenStore:
    """Operator actions on tokens (the CLI)."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, epoch_key: str
    ):
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.epoch_key = epoch_key
        self.audit = AuditLog(sessionmaker)

    async def create(self, *, audience: str, name: str, role: Role, actor: Actor) -> str:
        """Store a new token and return it (the only time it is ever visible)."""
        token = new_token(audience)
        with database_guard():
            async with self.sessionmaker() as session, session.begin():
                created = await repo.insert_token(
                    session,
                    name=name,
                    audience=audience,
                    role=role.value,
                    token_hash=hash_token(token),
                )
                if created:
                    await self.audit.record(
                        session,
                        actor,
                        Action.WORKER_TOKEN_CREATE,
                        f"worker_token:{name}",
                        after={"audience": audience, "role": role.value},
                    )
        if not created:
            raise Conflict(f"a live token named {name!r} already exists")
        return token

    async def list(self, *, include_revoked: bool = False) -> list[repo.TokenRow]:
        """Stored tokens (hashes never leave this module's callers' screens)."""
        with database_guard():
            async with self.sessionmaker() as session:
                return await repo.list_tokens(session, include_revoked=include_revoked)

    async def revoke(self, name: str, *, actor: Actor, idempotent: bool = False) -> None:
        """Revoke the live token `name` and invalidate every replica's cache.

        `idempotent`: a name whose tokens are all revoked already is no error (nothing
        recorded); a name never used is a 404 either way.
        """
        with database_guard():
            async with self.sessionmaker() as session, session.begin():
                changed = await repo.revoke_by_name(session, name)
                if changed:
                    await self.audit.record(
                        session, actor, Action.WORKER_TOKEN_REVOKE, f"worker_token:{name}"
                    )
                known = bool(changed) or (idempotent and await repo.name_exists(session, name))
        if not known:
            raise NotFound(f"no live token named {name!r}")
        if not changed:
            return
        with redis_guard():
            await self.redis.incr(self.epoch_key)


@dataclass
class _Cached:
    principal: WorkerPrincipal
    stored_hash: str
    revoked: bool


class TokenVerifier:
    """Verifies `X-Worker-Token` values for one port (one per app)."""

    def __init__(self, store: TokenStore, audience: str, cache_s: float) -> None:
        self.store = store
        self.audience = audience
        self.cache_s = cache_s
        self._cache: TtlCache[str, _Cached] = TtlCache(100_000)
        self._epoch: bytes | str | None = None
        self._touched: dict[int, float] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def verify(self, token: str | None) -> WorkerPrincipal:
        """The principal of `token`, or `Unauthorized` with a reason code."""
        if not token:
            raise Unauthorized("X-Worker-Token header is missing", reason="missing_token")
        digest = hash_token(token)
        with redis_guard():
            epoch = await self.store.redis.get(self.store.epoch_key)
        if epoch != self._epoch:
            self._cache.clear()
            self._epoch = epoch
        entry = await self._lookup(digest)
        if entry is None or not hmac.compare_digest(entry.stored_hash, digest):
            raise Unauthorized("unknown worker token", reason="invalid_token")
        if entry.revoked:
            raise Unauthorized("worker token was revoked", reason="revoked_token")
        if entry.principal.audience != self.audience:
            raise Unauthorized("token is not valid on this port", reason="wrong_audience")
        self._touch(entry.principal.token_id)
        return entry.principal

    async def _lookup(self, digest: str) -> _Cached | None:
        found = self._cache.peek(digest)
        cached = None if found is None else found[0]
        if found is not None and found[1]:
            return cached
        try:
            async with self.store.sessionmaker() as session:
                row = await repo.find_by_hash(session, digest)
        except Exception as exc:
            if not is_database_down(exc):
                raise
            if cached is not None:
                return cached  # serve stale: a database outage must not stop heartbeats
            raise DependencyUnavailable("database") from exc
        if row is None:
            self._cache.pop(digest)
            return None
        entry = _Cached(
            WorkerPrincipal(row.id, row.name, row.audience, Role(row.role)),
            row.token_hash,
            row.revoked_at is not None,
        )
        self._cache.put(digest, entry, self.cache_s)
        return entry

    def _touch(self, token_id: int) -> None:
        now = time.monotonic()
        if now - self._touched.get(token_id, -_TOUCH_EVERY_S) < _TOUCH_EVERY_S:
            return
        self._touched[token_id] = now
        task = asyncio.create_task(self._write_last_used(token_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_last_used(self, token_id: int) -> None:
        try:
            async with self.store.sessionmaker() as session, session.begin():
                await repo.touch(session, token_id)
        except Exception as exc:  # last-use bookkeeping must never fail a request
            log.warning("token_touch_failed", error=type(exc).__name__)
            self._touched.pop(token_id, None)

    async def close(self) -> None:
        """Wait for pending last-use writes."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
