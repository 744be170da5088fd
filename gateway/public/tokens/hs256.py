"""Verify HS256 tokens signed with a shared secret, as Supabase issues them.

Only `alg: HS256` is accepted (PyJWT is given that one algorithm), so neither `none` nor
an asymmetric algorithm reaches this key. Supabase's own `role` claim is a PostgreSQL
role (`authenticated`), not a gateway role, so no claim maps to the gateway's role or
tier unless `JWT_HS256_ROLE_CLAIM` / `JWT_HS256_TIER_CLAIM` say which
(`app_metadata.role`, say: `app_metadata` is writable only with the service key).
"""

from __future__ import annotations

from gateway.core.errors import Unauthorized
from gateway.core.settings.identity import default_issuer_name
from gateway.public.tokens.decode import decode_verified
from gateway.public.tokens.identity import Identity, issuer_identity
from gateway.public.tokens.peek import Peeked


class Hs256Verifier:
    """Tokens of the one HS256 issuer."""

    def __init__(
        self,
        *,
        secret: str,
        issuer: str,
        audience: str,
        role_claim: str | None,
        tier_claim: str | None,
        leeway_s: float,
    ) -> None:
        self.issuer = issuer
        self._secret = secret.encode()
        self._audience = [audience]
        self._namespace = default_issuer_name(issuer)
        self._role_claim = role_claim
        self._tier_claim = tier_claim
        self._leeway_s = leeway_s

    async def verify(self, token: str, peeked: Peeked) -> Identity:
        """The token's holder, or `Unauthorized` with a reason."""
        if peeked.alg != "HS256":
            raise Unauthorized(f"alg {peeked.alg[:20]!r} is not HS256", reason="alg_not_allowed")
        claims = decode_verified(
            token,
            self._secret,
            algorithm="HS256",
            audience=self._audience,
            issuer=self.issuer,
            leeway_s=self._leeway_s,
        )
        return issuer_identity(
            claims,
            namespace=self._namespace,
            role_claim=self._role_claim,
            tier_claim=self._tier_claim,
            expires_at=float(claims["exp"]) + self._leeway_s,
        )
