"""Stream tickets: short-lived, single-use, signed credentials for `?ticket=`.

`EventSource` and `WebSocket` in a browser cannot send headers, and a long-lived API key
or ID token must never travel in a URL (history, proxy logs, Referer). So a caller
authenticated the usual way asks `POST /v1/stream-tickets` for a ticket, hands it to the
browser, and the browser opens `...?ticket=<t>` within `STREAM_TICKET_TTL_S` (60 s).

A ticket is a signed token (`gateway/kit/signed_tokens.py`, keys `STREAM_TICKET_KEYS`)
naming its owner (limit key, tier, admin flag), what it may watch (some of the owner's
jobs, or all of them), its expiry and a random id. Redeeming it claims the id in Redis
with `SET NX` for the rest of its life, so a second use fails on every replica; nothing
is stored at issue. It is bound to the caller: the stream opened with it belongs to the
ticket's owner and can only follow the owner's jobs, whoever presents it. A ticket
issued before its owner's key was revoked stays good for the rest of its minute.

Every refusal is a 401 with its own `reason`: `ticket_invalid` (malformed, unknown key,
tampered, not a stream ticket), `ticket_expired`, `ticket_used`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from pydantic import BaseModel
from redis.asyncio import Redis

from gateway.core.errors import NotFound, ServiceUnavailable, Unauthorized
from gateway.core.settings import Environment, Settings
from gateway.core.settings.tiers import Tiers
from gateway.jobs.owner import Owner
from gateway.kit.outage import redis_guard
from gateway.kit.signed_tokens import InvalidToken, SignedTokens

log = structlog.get_logger("gateway.streams.tickets")

VERSION = 1
TYPE = "stream"
# The key used when STREAM_TICKET_KEYS is unset outside production. It is public (it is
# in this file), so a ticket it signed proves nothing: production never uses it.
DEVELOPMENT_KEY_ID = "dev"
DEVELOPMENT_KEY = b"taxlien-gateway-public-development-stream-ticket-key"
# A used ticket's id is remembered this much past its expiry (clock skew between
# replicas), so it cannot be used again however the clocks differ by less.
_USED_GRACE_S = 30


@dataclass(frozen=True)
class Ticket:
    """What a redeemed ticket grants: its owner's jobs (all, or only `job_ids`), and
    whether its issuer could read the owner's parcel watches (`watches:read`)."""

    owner: Owner
    job_ids: frozenset[str] | None
    watches: bool = False

    def allows(self, job_id: str) -> bool:
        """Whether the ticket may watch `job_id` (ownership is checked separately)."""
        return self.job_ids is None or job_id in self.job_ids


class IssuedTicket(BaseModel):
    """The answer to `POST /v1/stream-tickets`."""

    ticket: str
    expires_at: datetime
    job_ids: list[str] | None


class OwnedJobs(Protocol):
    """Which jobs are the owner's (`gateway.jobs.reading.JobSnapshots`)."""

    async def owned(self, owner: Owner, job_ids: Sequence[str]) -> set[str]: ...


def ticket_signer(settings: Settings) -> SignedTokens:
    """The configured keys; the public development key outside production when unset."""
    keys = [(kid, s.get_secret_value().encode()) for kid, s in settings.stream_ticket_keys]
    if not keys and settings.environment is not Environment.PRODUCTION:
        keys = [(DEVELOPMENT_KEY_ID, DEVELOPMENT_KEY)]
    return SignedTokens(keys)


class StreamTickets:
    """Issues and redeems tickets (see the module docstring)."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        signer: SignedTokens,
        tiers: Tiers,
        jobs: OwnedJobs,
        ttl_s: int,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.signer = signer
        self.tiers = tiers
        self.jobs = jobs
        self.ttl_s = ttl_s
        if not signer.can_sign:
            log.warning(
                "stream_tickets_disabled",
                reason="STREAM_TICKET_KEYS is unset in production: POST /v1/stream-tickets "
                "answers 503 (header-authenticated streams still work)",
            )

    async def issue(
        self,
        owner: Owner,
        job_ids: Sequence[str] | None,
        *,
        watches: bool = False,
        now: float | None = None,
    ) -> IssuedTicket:
        """A ticket for `owner`'s jobs (404 naming any listed job that is not theirs);
        `watches`: the issuing credential holds `watches:read`, so a socket opened with
        the ticket may follow the owner's parcel changes (a key without it may not get
        that right through a ticket)."""
        if not self.signer.can_sign:
            raise ServiceUnavailable(
                "Stream tickets are not configured: set STREAM_TICKET_KEYS",
                headers={"Retry-After": "60"},
            )
        wanted = None if job_ids is None else sorted(set(job_ids))
        if wanted:
            owned = await self.jobs.owned(owner, wanted)
            missing = [j for j in wanted if j not in owned]
            if missing:
                raise NotFound(f"No job {missing[0]}")
        exp = int(time.time() if now is None else now) + self.ttl_s
        payload = {
            "v": VERSION,
            "typ": TYPE,
            "sub": owner.id,
            "tier": owner.tier.name,
            "adm": owner.is_admin,
            "jobs": wanted,
            "wat": watches and wanted is None,
            "exp": exp,
            "jti": secrets.token_hex(12),
            "kid": self.signer.signing_kid,
        }
        return IssuedTicket(
            ticket=self.signer.sign_payload(payload),
            expires_at=datetime.fromtimestamp(exp, UTC),
            job_ids=wanted,
        )

    async def redeem(self, ticket: str, *, now: float | None = None) -> Ticket:
        """The ticket's grant, once (401 with reason ticket_invalid/expired/used)."""
        try:
            raw = self.signer.verify_payload(ticket)
        except InvalidToken:
            raise _invalid() from None
        claims = _claims(raw)
        if claims is None:
            raise _invalid()
        sub, tier, admin, jobs, exp, jti = claims
        clock = time.time() if now is None else now
        if exp <= clock:
            raise Unauthorized(
                "This stream ticket has expired: ask POST /v1/stream-tickets for a new one",
                reason="ticket_expired",
            )
        with redis_guard():
            first_use = await self.redis.set(
                f"{self.prefix}streams:ticket:{jti}",
                b"1",
                nx=True,
                ex=max(1, int(exp - clock)) + _USED_GRACE_S,
            )
        if not first_use:
            raise Unauthorized(
                "This stream ticket was already used: tickets are single-use, ask "
                "POST /v1/stream-tickets for a new one for each connection",
                reason="ticket_used",
            )
        owner = Owner(id=sub, tier=self.tiers.get(tier), is_admin=admin)
        # A ticket without the claim (issued before it existed) does not cover watches.
        watches = raw.get("wat") is True
        return Ticket(owner, None if jobs is None else frozenset(jobs), watches)


def _invalid() -> Unauthorized:
    return Unauthorized("Invalid stream ticket", reason="ticket_invalid")


def _claims(
    raw: dict[str, Any],
) -> tuple[str, str, bool, list[str] | None, int, str] | None:
    """The payload's fields, or None when any is missing or of the wrong type."""
    if raw.get("v") != VERSION or raw.get("typ") != TYPE:
        return None
    sub, tier, admin, jobs = raw.get("sub"), raw.get("tier"), raw.get("adm"), raw.get("jobs")
    exp, jti = raw.get("exp"), raw.get("jti")
    if not (isinstance(sub, str) and isinstance(tier, str) and isinstance(jti, str)):
        return None
    if not isinstance(admin, bool) or not isinstance(exp, int) or isinstance(exp, bool):
        return None
    if jobs is not None and not (isinstance(jobs, list) and all(isinstance(j, str) for j in jobs)):
        return None
    return sub, tier, admin, jobs, exp, jti
