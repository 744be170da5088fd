"""Download tokens: `<base64url(JSON payload)>.<base64url(HMAC-SHA256 of the first part)>`.

A download link must work without any auth header (a browser follows it), so the token
itself is the credential. It names what it grants (job, owner, format), when that ends
(`exp`, Unix seconds) and which generation of the job's links it belongs to (`gen`,
`jobs.download_gen`: bumping it revokes every earlier link without storing any token).

Key rotation: the first configured key signs, every configured key verifies; the key id
(`kid`) travels in the payload, so verification tries exactly one key. Dropping a key
from `DOWNLOAD_SIGNING_KEYS` invalidates every link it signed (403), which is how a
leaked key is retired.

Order of checks, on purpose: shape, key, signature, then expiry. A forged or tampered
token learns nothing (403) - not even whether it would have expired - and only a token we
signed can be told it expired (410). Signatures are compared with `hmac.compare_digest`.
Tokens are credentials: nothing here logs one, and errors never echo it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from gateway.core.errors import Forbidden, Gone

Format = Literal["csv", "ndjson"]
FORMATS: tuple[Format, ...] = ("csv", "ndjson")
VERSION = 1
# Far above any token we sign (about 200 characters); a longer one is not decoded at all.
MAX_TOKEN_CHARS = 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]+")

# The key used when DOWNLOAD_SIGNING_KEYS is unset outside production. It is public (it
# is in this file), so a link it signed proves nothing: production refuses to sign with
# it, and a production gateway never lists it among its verification keys.
DEVELOPMENT_KEY_ID = "dev"
DEVELOPMENT_KEY = b"taxlien-gateway-public-development-download-key"


@dataclass(frozen=True)
class Claims:
    """What a token grants: one job's results, for its owner, in one format, until `exp`."""

    job: str
    owner: str
    fmt: Format
    gen: int
    exp: int
    kid: str
    v: int = VERSION


class TokenForbidden(Forbidden):
    """A malformed, tampered or unknown-key token (403)."""


class TokenExpired(Gone):
    """A genuine token past its expiry (410)."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, signed_part: str) -> bytes:
    return hmac.new(key, signed_part.encode("ascii"), hashlib.sha256).digest()


class TokenSigner:
    """Signs with the first key and verifies with any of `keys` (`(kid, secret)`)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        self._keys = dict(keys)
        self._signing = keys[0] if keys else None

    @property
    def can_sign(self) -> bool:
        """Whether a signing key is configured."""
        return self._signing is not None

    def sign(
        self, *, job: str, owner: str, fmt: Format, gen: int, ttl_s: int, now: float | None = None
    ) -> tuple[str, Claims]:
        """A token for these claims, expiring `ttl_s` after `now` (default: the clock)."""
        if self._signing is None:
            raise RuntimeError("no signing key configured")
        kid, key = self._signing
        issued = time.time() if now is None else now
        claims = Claims(job=job, owner=owner, fmt=fmt, gen=gen, exp=int(issued) + ttl_s, kid=kid)
        payload = {
            "v": claims.v,
            "job": claims.job,
            "owner": claims.owner,
            "fmt": claims.fmt,
            "gen": claims.gen,
            "exp": claims.exp,
            "kid": claims.kid,
        }
        body = _b64encode(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{_b64encode(_mac(key, body))}", claims

    def verify(self, token: str, *, now: float | None = None) -> Claims:
        """The token's claims; `TokenForbidden` (403) unless genuine, `TokenExpired` (410)."""
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise TokenForbidden("Malformed download token")
        body, signature = token.split(".")
        try:
            raw = json.loads(_b64decode(body))
        except ValueError:  # bad base64 or JSON (UnicodeDecodeError is one too)
            raise TokenForbidden("Malformed download token") from None
        claims = _claims(raw)
        if claims is None:
            raise TokenForbidden("Malformed download token")
        key = self._keys.get(claims.kid)
        if key is None:
            raise TokenForbidden("Download token signed by an unknown key")
        # Compared as text, not decoded bytes: base64's unused trailing bits would let two
        # spellings of one signature both pass, and a link must have exactly one form.
        expected = _b64encode(_mac(key, body))
        if not hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace")):
            raise TokenForbidden("Download token signature does not match")
        if claims.exp <= (time.time() if now is None else now):
            raise TokenExpired("This download link has expired: ask for a new one")
        return claims


def _claims(raw: object) -> Claims | None:
    """The payload as claims, or None when any field is missing or of the wrong type."""
    if not isinstance(raw, dict):
        return None
    strings = ("job", "owner", "fmt", "kid")
    ints = ("v", "gen", "exp")
    if any(not isinstance(raw.get(k), str) for k in strings):
        return None
    # bool is an int subclass: `true` is no generation.
    if any(not isinstance(raw.get(k), int) or isinstance(raw.get(k), bool) for k in ints):
        return None
    if raw["v"] != VERSION or raw["fmt"] not in FORMATS:
        return None
    return Claims(
        job=raw["job"],
        owner=raw["owner"],
        fmt=cast("Format", raw["fmt"]),
        gen=raw["gen"],
        exp=raw["exp"],
        kid=raw["kid"],
    )
