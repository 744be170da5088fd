"""Download tokens: signed tokens (`gateway/kit/signed_tokens.py`) naming one job's results.

A download link must work without any auth header (a browser follows it), so the token
itself is the credential. It names what it grants (job, owner, format), when that ends
(`exp`, Unix seconds) and which generation of the job's links it belongs to (`gen`,
`jobs.download_gen`: bumping it revokes every earlier link without storing any token).
Dropping a key from `DOWNLOAD_SIGNING_KEYS` invalidates every link it signed (403), which
is how a leaked key is retired.

Order of checks, on purpose: shape, key, signature, then expiry. A forged or tampered
token learns nothing (403) - not even whether it would have expired - and only a token we
signed can be told it expired (410).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

from gateway.core.errors import Forbidden, Gone
from gateway.kit.signed_tokens import InvalidToken, Refusal, SignedTokens

Format = Literal["csv", "ndjson"]
FORMATS: tuple[Format, ...] = ("csv", "ndjson")
VERSION = 1

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


_REFUSALS = {
    Refusal.MALFORMED: "Malformed download token",
    Refusal.UNKNOWN_KEY: "Download token signed by an unknown key",
    Refusal.BAD_SIGNATURE: "Download token signature does not match",
}


class TokenSigner:
    """Signs and verifies download tokens with `keys` (`(kid, secret)`, first signs)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        self._tokens = SignedTokens(keys)

    @property
    def can_sign(self) -> bool:
        """Whether a signing key is configured."""
        return self._tokens.can_sign

    def sign(
        self, *, job: str, owner: str, fmt: Format, gen: int, ttl_s: int, now: float | None = None
    ) -> tuple[str, Claims]:
        """A token for these claims, expiring `ttl_s` after `now` (default: the clock)."""
        kid = self._tokens.signing_kid
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
        return self._tokens.sign_payload(payload), claims

    def verify(self, token: str, *, now: float | None = None) -> Claims:
        """The token's claims; `TokenForbidden` (403) unless genuine, `TokenExpired` (410)."""
        try:
            raw = self._tokens.verify_payload(token)
        except InvalidToken as exc:
            raise TokenForbidden(_REFUSALS[exc.refusal]) from None
        claims = _claims(raw)
        if claims is None:
            raise TokenForbidden("Malformed download token")
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
