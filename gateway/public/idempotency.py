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

Stored bodies are sealed (AES-GCM) with a key derived from the client's
`Idempotency-Key`, which Redis never holds (the record is named by a hash of it): the
answer of `POST /v1/api-keys` carries the new key's secret (that is what a replay is
for), and PostgreSQL keeps only a hash of that secret, so a Redis dump must not hand it
out either. Only the client that chose the key can have its answer replayed.

Multipart bodies (uploads) are fingerprinted with their boundary blanked out: the
boundary is chosen anew by every `curl -F` or browser submission, so a retry of the
same file would otherwise be a `mismatch`.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

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
    """The decision for one request; `token` identifies this attempt when it is `new`;
    `seal` is the body key derived from the client's key (never stored)."""

    outcome: Outcome
    record: str
    token: str
    response: StoredResponse | None = None
    takeover: bool = False
    seal: bytes = b""


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


_BOUNDARY = re.compile(rb';\s*boundary="?([^";]{1,200})"?', re.IGNORECASE)


def multipart_fingerprint(method: str, path: str, query: bytes, content_type: bytes) -> Hasher:
    """`fingerprint`, but blind to a multipart body's boundary (in the content type and
    in the body), which every client picks anew for each submission of the same form."""
    found = _BOUNDARY.search(content_type)
    if found is None or not content_type.lower().startswith(b"multipart/"):
        return fingerprint(method, path, query, content_type)
    plain_type = content_type[: found.start()] + content_type[found.end() :]
    return _BoundaryBlind(fingerprint(method, path, query, plain_type), b"--" + found.group(1))


class _BoundaryBlind:
    """Feeds a hash with every occurrence of the delimiter replaced, across chunks: the
    last `len(delimiter) - 1` bytes wait for the next chunk, since a delimiter that
    starts there may end in it."""

    def __init__(self, hasher: Hasher, delimiter: bytes) -> None:
        self._hasher = hasher
        self._delimiter = delimiter
        self._keep = len(delimiter) - 1
        self._tail = b""

    def update(self, data: bytes, /) -> None:
        buf = (self._tail + data).replace(self._delimiter, b"--\x00")
        cut = max(0, len(buf) - self._keep)
        self._hasher.update(buf[:cut])
        self._tail = buf[cut:]

    def hexdigest(self) -> str:
        self._hasher.update(self._tail)
        self._tail = b""
        return self._hasher.hexdigest()


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
        seal = _seal_key(key, record)
        token = secrets.token_hex(12)
        args = (request_fingerprint, token, self.lock_s * 1000, self.ttl_s)
        # Safe to repeat after a lost reply: the script answers `new` again to its own token.
        with redis_guard(), idempotent():
            async with asyncio.timeout(_REDIS_TIMEOUT_S):
                reply: list[Any] = await self._begin(keys=[record], args=args)
        outcome = Outcome(_text(reply[0]))
        if outcome is Outcome.NEW:
            return Claim(outcome, record, token, takeover=_text(reply[1]) == "takeover", seal=seal)
        counter = self._metrics.idempotency_requests
        if outcome is Outcome.IN_FLIGHT:
            counter.labels("in_flight").inc()
            return Claim(outcome, record, token)
        if outcome is Outcome.MISMATCH:
            counter.labels("mismatch").inc()
            return Claim(outcome, record, token)
        counter.labels("replayed").inc()
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in json.loads(reply[2])]
        body = _open(seal, record, reply[3])
        return Claim(outcome, record, token, StoredResponse(int(reply[1]), headers, body))

    async def store(self, claim: Claim, response: StoredResponse) -> bool:
        """Keep `response` for replays, if `claim` still holds the key (False: it lost it)."""
        headers = json.dumps(
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers]
        )
        body = _sealed(claim.seal, claim.record, response.body)
        args = (claim.token, "store", response.status, headers, body, self.ttl_s)
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


_SEAL_INFO = b"gateway idempotency body v1"
_NONCE_BYTES = 12


def _seal_key(client_key: str, record: str) -> bytes:
    """The AES-256 key of one record's body: HKDF over the client's key, salted with the
    record's name (so one client key seals each endpoint's answer differently)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=record.encode(), info=_SEAL_INFO)
    return hkdf.derive(client_key.encode("utf-8", "surrogateescape"))


def _sealed(seal: bytes, record: str, body: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(seal).encrypt(nonce, body, record.encode())


def _open(seal: bytes, record: str, stored: bytes) -> bytes:
    """The stored body; a record that does not open (not sealed with this client key for
    this record, which the key scheme rules out) is refused as in use, never replayed."""
    try:
        return AESGCM(seal).decrypt(stored[:_NONCE_BYTES], stored[_NONCE_BYTES:], record.encode())
    except (InvalidTag, ValueError):
        log.error("idempotency_record_unreadable", record=record)
        raise IdempotencyKeyInUse(
            "The stored answer for this Idempotency-Key cannot be read"
        ) from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
