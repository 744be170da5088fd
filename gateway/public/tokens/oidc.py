"""Verify access or ID tokens of one OIDC issuer (RS256/ES256, keys from its JWKS).

Checks, in order: `alg` is one the issuer publishes and we support (so never `none` and
never HS*), the `kid` names one of its keys (refetching once on rotation, see
`jwks.py`), the signature, then `exp`/`nbf`/`iat` within `JWT_CLOCK_SKEW_S`, `iss`
exactly, `aud` containing the configured audience, and a `sub`.
"""

from __future__ import annotations

from gateway.core.errors import Unauthorized
from gateway.core.settings.identity import OidcIssuer
from gateway.public.tokens.decode import decode_verified
from gateway.public.tokens.identity import Identity, issuer_identity
from gateway.public.tokens.jwks import IssuerKeys
from gateway.public.tokens.peek import Peeked


class OidcVerifier:
    """Tokens of one configured OIDC issuer."""

    def __init__(self, config: OidcIssuer, keys: IssuerKeys, *, leeway_s: float) -> None:
        self.config = config
        self.keys = keys
        self._leeway_s = leeway_s

    async def verify(self, token: str, peeked: Peeked) -> Identity:
        """The token's holder, or `Unauthorized` with a reason."""
        alg = peeked.alg
        if alg not in await self.keys.algorithms():
            raise Unauthorized(
                f"alg {alg[:20]!r} is not one this issuer signs with", reason="alg_not_allowed"
            )
        signing = await self.keys.key_for(peeked.kid, alg)
        claims = decode_verified(
            token,
            signing.key,
            algorithm=signing.algorithm,
            audience=self.config.audience,
            issuer=self.config.issuer,
            leeway_s=self._leeway_s,
        )
        return issuer_identity(
            claims,
            namespace=self.config.user_namespace,
            role_claim=self.config.role_claim,
            tier_claim=self.config.tier_claim,
            expires_at=float(claims["exp"]) + self._leeway_s,
        )
