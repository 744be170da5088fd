"""Verify a JWT's signature and registered claims with PyJWT, mapping failures to reasons.

Shared by the OIDC and HS256 verifiers, so a token refused for the same cause gets the
same `reason` whoever issued it. The algorithm list passed here is always exactly one
algorithm, chosen by the caller from what the key may do: PyJWT then refuses any other
`alg` in the header (`none`, or HS256 presented with a public key).
"""

from __future__ import annotations

import math
from typing import Any

import jwt

from gateway.core.errors import Unauthorized

# `sub` becomes part of a user id (a primary key): bound it.
MAX_SUBJECT_CHARS = 255
_REQUIRED = ["exp", "iss", "aud", "sub"]


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def decode_verified(
    token: str,
    key: Any,
    *,
    algorithm: str,
    audience: list[str],
    issuer: str,
    leeway_s: float,
) -> dict[str, Any]:
    """The verified claims, or `Unauthorized` with the reason of the first failed check."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            leeway=leeway_s,
            options={"require": _REQUIRED, "strict_aud": False},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired", reason="token_expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise Unauthorized("The token is not valid yet", reason="token_not_yet_valid") from exc
    except jwt.InvalidAudienceError as exc:
        raise Unauthorized("The token is for another audience", reason="wrong_audience") from exc
    except jwt.InvalidIssuerError as exc:
        raise Unauthorized("The token's issuer does not match", reason="wrong_issuer") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(
            f"The token lacks the {exc.claim!r} claim", reason="missing_claim"
        ) from exc
    except jwt.InvalidSignatureError as exc:
        raise Unauthorized("The token's signature does not verify", reason="bad_signature") from exc
    except jwt.InvalidAlgorithmError as exc:
        raise Unauthorized("The token's alg is not allowed", reason="alg_not_allowed") from exc
    except jwt.InvalidTokenError as exc:
        # DecodeError, non-numeric iat/exp/nbf, non-string sub/jti, ...
        raise Unauthorized("The token is malformed", reason="malformed_token") from exc
    for name in ("exp", "iat", "nbf"):
        if name in claims and not _is_time(claims[name]):
            # PyJWT accepts "9999999999" (it calls int()); arithmetic further on would not.
            raise Unauthorized(f"The token's {name!r} is not a number", reason="malformed_token")
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_CHARS:
        raise Unauthorized("The token's 'sub' is empty or too long", reason="malformed_token")
    return claims
