"""Idempotency keys on public POSTs (draft-ietf-httpapi-idempotency-key-header, Stripe).

A client that sends `Idempotency-Key` may repeat a POST whose answer it never saw
(timeout, dropped connection) without the effect happening twice. Each key has one
record in Redis (`<prefix>idem:<limit key>:<hash of method, path, client key>`), so
keys are scoped per principal and endpoint, shared by every replica, and survive a
gateway restart; they expire `IDEMPOTENCY_TTL_S` after the answer was stored.

One script (`idempotency_begin.lua`) decides, atomically, what a request does:

- `new`: nobody holds the key; this attempt takes it (in flight, with a per-attempt
  token and a lock of `IDEMPOTENCY_LOCK_S`) and the request runs;
- `in_flight`: another attempt holds it: 409, retry later (Stripe's
  `idempotency_key_in_use`);
- `mismatch`: the key was used for a different request (fingerprint: SHA-256 over
  method, path, query, content type and body): 422, a client bug;
- `replay`: the stored status, headers and body.

Of fifty concurrent identical requests one is therefore `new` and the others
`in_flight` (or `replay` once the first is stored): the route runs once. The lock
bounds how long a gateway that died mid-request blocks the key: once it ends, the next
repeat takes over (a new token), and the dead attempt's late answer, should it come, is
refused by `idempotency_finish.lua`, which stores only for the token that holds the key.

What is stored: 2xx and 4xx answers, except 408/409/425/429 (the client is told to try
again: replaying "try again" for a day would be wrong). A 5xx, a 3xx, or an answer that never
completed (the app raised, or was cancelled with its connection) releases the key, so
the client's retry runs the request again; so does an answer above
`IDEMPOTENCY_MAX_BODY_BYTES`, with a log line saying so.

Stored bodies sit in Redis as the route sent them, for the TTL: the answer of
`POST /v1/api-keys` carries the new key's secret (that is what a replay is for), so Redis
is trusted with it as it is with cached responses.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from gateway.core.errors import BadRequest, Conflict, InvalidInput
from gateway.core.redis import idempotent
from gateway.core.resources import Resources
from gateway.kit.lua import register_scripts
from gateway.kit.outage import REDIS_FAILURE, redis_guard
from gateway.public.metrics import PublicMetrics

log = structlog.get_logger("gateway.public.idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = (b"idempotent-replayed", b"true")
MAX_KEY_LENGTH = 255
# Statuses that tell the client to try again: storing them would replay "try again".
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})
# Response headers never stored: framing (recomputed on replay), per-response values the
# outer layers add again (request id, limiter state), and cookies (none are sent here,
# and a replay must not hand one to whoever holds the key).
_NOT_STORED = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"date",
        b"server",
        b"set-cookie",
        b"x-request-id",
        b"ratelimit",
        b"ratelimit-policy",
        REPLAYED_HEADER[0],
    }
)
# Bound on each script call. Above the limiter's timeout on purpose: there a slow Redis
# means a local fallback, here it means a 503, so a slow moment should not refuse.
_REDIS_TIMEOUT_S = 2.0


class InvalidIdempotencyKey(BadRequest):
    """400: the `Idempotency-Key` header is not a 1-255 character printable string."""

    slug = "idempotency-key-invalid"
    title = "Invalid Idempotency-Key"


class IdempotencyKeyInUse(Conflict):
    """409: another request with this key is still being processed."""

    slug = "idempotency-key-in-use"
    title = "Idempotency-Key in use"


class IdempotencyKeyMismatch(InvalidInput):
    """422: the key was already used for a different request."""

    slug = "idempotency-key-mismatch"
    title = "Idempotency-Key reused for a different request"

    def __init__(self) -> None:
        super().__init__(
            [
                {
                    "loc": ["header", HEADER],
                    "msg": "this key was used for a request with another method, path, "
                    "query, content type or body",
                    "type": "idempotency_key_mismatch",
                }
            ],
            detail="The Idempotency-Key was already used for a different request",
        )


class Outcome(enum.StrEnum):
    """What `IdempotencyService.begin` decided for a request."""

    NEW = "new"
    IN_FLIGHT = "in_flight"
    MISMATCH = "mismatch"
    REPLAY = "replay"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """An answer as it is stored and replayed (raw ASGI headers, lowercase names)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Claim:
    """The decision for one request; `token` identifies this attempt when it is `new`."""

    outcome: Outcome
    record: str
    token: str
    response: StoredResponse | None = None
    takeover: bool = False


class Hasher(Protocol):
    """The part of `hashlib`'s hash objects the fingerprint uses."""

    def update(self, data: bytes, /) -> None:
        """Feed more bytes."""

    def hexdigest(self) -> str:
        """The digest so far, in hex."""


def parse_key(values: list[bytes]) -> str:
    """The client's key from the raw header values, or `InvalidIdempotencyKey`.

    The draft makes the value a Structured Field string (`"abc"`, RFC 8941); a bare
    token (`abc`) is accepted too, as most clients send one. Two headers are refused
    rather than one picked: layers that read headers differently must not disagree on
    which request this is.
    """
    if len(values) != 1:
        raise InvalidIdempotencyKey(f"Send one {HEADER} header, not several")
    raw = values[0].strip(b" \t")
    key = _sf_string(raw) if raw.startswith(b'"') else _bare(raw)
    if key is None or not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(
            f"{HEADER} must be a quoted string of 1-{MAX_KEY_LENGTH} printable ASCII"
            ' characters, e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324"'
        )
    return key


def _sf_string(raw: bytes) -> str | None:
    """An RFC 8941 sf-string (quotes, `\\"` and `\\\\` escapes), or None if malformed."""
    out = bytearray()
    i, end = 1, len(raw)
    while i < end:
        c = raw[i]
        if c == 0x5C:  # backslash: only \" and \\ are escapes
            if i + 1 >= end or raw[i + 1] not in (0x22, 0x5C):
                return None
            out.append(raw[i + 1])
            i += 2
            continue
        if c == 0x22:  # closing quote: nothing may follow
            return out.decode("ascii") if i == end - 1 else None
        if not 0x20 <= c <= 0x7E:
            return None
        out.append(c)
        i += 1
    return None  # no closing quote


def _bare(raw: bytes) -> str | None:
    """A bare key: visible ASCII, no quotes or spaces."""
    if all(0x21 <= c <= 0x7E and c != 0x22 for c in raw):
        return raw.decode("ascii")
    return None


def _field(hasher: Hasher, value: bytes) -> None:
    # Length-prefixed, so no choice of path and query can collide with another.
    hasher.update(len(value).to_bytes(8, "big"))
    hasher.update(value)


def fingerprint(method: str, path: str, query: bytes, content_type: bytes) -> Hasher:
    """A SHA-256 over the request's identity; feed the body with `update`, last."""
    hasher = hashlib.sha256()
    for part in (method.encode(), path.encode("utf-8", "surrogateescape"), query, content_type):
        _field(hasher, part)
    return hasher


def storable(status: int) -> bool:
    """Whether an answer with `status` is kept for replay (2xx, and 4xx that is final)."""
    return 200 <= status < 300 or (400 <= status < 500 and status not in _RETRYABLE_4XX)


def storable_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The response headers a replay repeats."""
    return [(k, v) for k, v in headers if k.lower() not in _NOT_STORED]


class IdempotencyService:
    """Claims, stores and releases idempotency keys; see the module docstring."""

    def __init__(self, resources: Resources, metrics: PublicMetrics) -> None:
        settings = resources.settings
        self._resources = resources
        self._metrics = metrics
        self.ttl_s = settings.idempotency_ttl_s
        self.lock_s = settings.idempotency_lock_s
        self.max_body_bytes = settings.idempotency_max_body_bytes
        scripts = register_scripts(
            resources.redis, "gateway.public", ("idempotency_begin", "idempotency_finish")
        )
        self._begin = scripts["idempotency_begin"]
        self._finish = scripts["idempotency_finish"]

    def record_key(self, limit_key: str, method: str, path: str, key: str) -> str:
        """The Redis key of the record for this principal, endpoint and client key."""
        scope = hashlib.sha256()
        for part in (method, path, key):
            _field(scope, part.encode("utf-8", "surrogateescape"))
        return self._resources.key("idem", limit_key, scope.hexdigest())

    async def begin(
        self, limit_key: str, method: str, path: str, key: str, request_fingerprint: str
    ) -> Claim:
        """Decide what this request does (`Outcome`); Redis down raises a 503."""
        record = self.record_key(limit_key, method, path, key)
        token = secrets.token_hex(12)
        args = (request_fingerprint, token, self.lock_s * 1000, self.ttl_s)
        # Safe to repeat after a lost reply: the script answers `new` again to its own token.
        with redis_guard(), idempotent():
            async with asyncio.timeout(_REDIS_TIMEOUT_S):
                reply: list[Any] = await self._begin(keys=[record], args=args)
        outcome = Outcome(_text(reply[0]))
        if outcome is Outcome.NEW:
            return Claim(outcome, record, token, takeover=_text(reply[1]) == "takeover")
        counter = self._metrics.idempotency_requests
        if outcome is Outcome.IN_FLIGHT:
            counter.labels("in_flight").inc()
            return Claim(outcome, record, token)
        if outcome is Outcome.MISMATCH:
            counter.labels("mismatch").inc()
            return Claim(outcome, record, token)
        counter.labels("replayed").inc()
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in json.loads(reply[2])]
        return Claim(outcome, record, token, StoredResponse(int(reply[1]), headers, reply[3]))

    async def store(self, claim: Claim, response: StoredResponse) -> bool:
        """Keep `response` for replays, if `claim` still holds the key (False: it lost it)."""
        headers = json.dumps(
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers]
        )
        args = (claim.token, "store", response.status, headers, response.body, self.ttl_s)
        stored = await self._run_finish(claim, args)
        if stored:
            self._metrics.idempotency_requests.labels("new").inc()
        else:
            self._not_stored(claim, "lost_key")
        return stored

    async def release(self, claim: Claim, reason: str) -> None:
        """Give the key up without an answer, so the client's retry runs again."""
        await self._run_finish(claim, (claim.token, "release"))
        self._not_stored(claim, reason)

    def _not_stored(self, claim: Claim, reason: str) -> None:
        self._metrics.idempotency_requests.labels("not_stored").inc()
        # The record key names the principal and a hash, never the client's key itself.
        log.info("idempotency_not_stored", reason=reason, record=claim.record)

    async def _run_finish(self, claim: Claim, args: tuple[Any, ...]) -> bool:
        try:
            with idempotent():  # the token check makes a repeat a no-op
                async with asyncio.timeout(_REDIS_TIMEOUT_S):
                    done = await self._finish(keys=[claim.record], args=args)
        except REDIS_FAILURE as exc:
            # The answer is already computed; the client gets it. The key stays in flight
            # until its lock ends, then a repeat runs again.
            log.warning(
                "idempotency_finish_failed",
                error=type(exc).__name__,
                record=claim.record,
                lock_s=self.lock_s,
            )
            return False
        return bool(done)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
