"""Pick the verifier of a bearer token by its (unverified) `iss`, and remember the answer.

Issuers: Firebase (`https://securetoken.google.com/<project>`: every such token goes to
Firebase, which judges the project), each `OIDC_ISSUERS` entry (exact match), and
`JWT_HS256_ISSUER`. Any other `iss` is a 401 `unknown_issuer`, without any key lookup or
signature check. The `iss` only routes: the chosen verifier checks it again with the
signature, so a forged `iss` just reaches a verifier whose keys did not sign the token.

A verified OIDC or HS256 token is remembered (keyed by its SHA-256) until it expires, so
a hot token costs one hash and a dict lookup; Firebase keeps its own cache (it also
checks revocation), and here only the route to it is remembered.
"""

from __future__ import annotations

import hashlib
import time
from typing import Protocol

from gateway.core.errors import Unauthorized
from gateway.core.settings.identity import FIREBASE_ISSUER_PREFIX
from gateway.kit.ttl_cache import TtlCache
from gateway.public.firebase import FirebaseVerifier
from gateway.public.tokens.identity import Identity, firebase_identity
from gateway.public.tokens.peek import Peeked, peek

_FIREBASE = "firebase"


class IssuerVerifier(Protocol):
    """A verifier of one issuer's tokens."""

    async def verify(self, token: str, peeked: Peeked) -> Identity:
        """The token's holder, or `Unauthorized`."""
        ...


class TokenChain:
    """Bearer-token verification across issuers; see the module docstring."""

    def __init__(
        self,
        *,
        firebase: FirebaseVerifier | None,
        issuers: dict[str, IssuerVerifier],
        cache_size: int,
    ) -> None:
        self._firebase = firebase
        self._issuers = issuers
        # Wall clock: entries live until the token's own `exp` (plus the allowed skew).
        self._verified: TtlCache[bytes, Identity | str] = TtlCache(cache_size, clock=time.time)

    @property
    def configured(self) -> bool:
        """Whether any issuer is configured at all."""
        return self._firebase is not None or bool(self._issuers)

    async def verify(self, token: str) -> Identity:
        """The holder of a valid token, or `Unauthorized` with a reason."""
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if isinstance(known, Identity):
            return known
        if known == _FIREBASE and self._firebase is not None:
            return firebase_identity(await self._firebase.verify(token))
        peeked = peek(token)
        if peeked.issuer.startswith(FIREBASE_ISSUER_PREFIX) and self._firebase is not None:
            claims = await self._firebase.verify(token)
            self._verified.put_until(digest, _FIREBASE, float(claims.get("exp", 0)))
            return firebase_identity(claims)
        verifier = self._issuers.get(peeked.issuer)
        if verifier is None:
            raise Unauthorized(
                "The token's issuer is not one this gateway accepts", reason="unknown_issuer"
            )
        identity = await verifier.verify(token, peeked)
        self._verified.put_until(digest, identity, identity.expires_at)
        return identity
