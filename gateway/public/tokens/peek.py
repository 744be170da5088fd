"""Read a JWT's header and claims WITHOUT verifying them, only to route it.

Nothing read here is trusted: `iss` picks the verifier, which then checks `iss` again
together with the signature; `alg` and `kid` pick the key, which the signature must
match. A token that is not even a well-formed JWT is refused here.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import Unauthorized

# Far above any real ID or access token; bounds the work done on unauthenticated input.
MAX_TOKEN_CHARS = 16_384


@dataclass(frozen=True, slots=True)
class Peeked:
    """The unverified header, and the issuer the token claims."""

    header: dict[str, Any]
    issuer: str

    @property
    def alg(self) -> str:
        """The header's `alg` (empty when absent or not a string)."""
        alg = self.header.get("alg")
        return alg if isinstance(alg, str) else ""

    @property
    def kid(self) -> str | None:
        """The header's `kid`, if a string."""
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def _segment(part: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def peek(token: str) -> Peeked:
    """The token's header and `iss`, or `Unauthorized(malformed_token)`.

    Decoded by hand rather than with PyJWT's unverified decode: this runs on the first
    sight of every bearer token, and PyJWT's path costs ~45 µs against ~5 µs here.
    """
    if len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized("The token is too long", reason="malformed_token")
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError("not a compact JWS")
        header, claims = _segment(parts[0]), _segment(parts[1])
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("The bearer token is not a JWT", reason="malformed_token") from exc
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise Unauthorized("The token has no 'iss' claim", reason="malformed_token")
    return Peeked(header=header, issuer=issuer)
