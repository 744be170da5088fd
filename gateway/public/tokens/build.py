"""Build the token chain from settings: one verifier per configured issuer."""

from __future__ import annotations

import httpx

from gateway.core.settings import Settings
from gateway.public.firebase import FirebaseVerifier
from gateway.public.tokens.chain import IssuerVerifier, TokenChain
from gateway.public.tokens.hs256 import Hs256Verifier
from gateway.public.tokens.jwks import IssuerKeys
from gateway.public.tokens.oidc import OidcVerifier


def build_token_chain(
    settings: Settings, http: httpx.AsyncClient, firebase: FirebaseVerifier | None
) -> TokenChain:
    """The chain for `settings`, fetching keys with the process's shared HTTP client."""
    leeway = float(settings.jwt_clock_skew_s)
    issuers: dict[str, IssuerVerifier] = {}
    for config in settings.oidc_issuers:
        keys = IssuerKeys(
            config,
            http,
            refresh_min_s=settings.oidc_jwks_refresh_min_s,
            max_age_s=settings.oidc_jwks_max_age_s,
            timeout_s=settings.oidc_fetch_timeout_s,
        )
        issuers[config.issuer] = OidcVerifier(config, keys, leeway_s=leeway)
    secret = settings.jwt_hs256_secret
    if secret is not None and settings.jwt_hs256_issuer and settings.jwt_hs256_audience:
        issuers[settings.jwt_hs256_issuer] = Hs256Verifier(
            secret=secret.get_secret_value(),
            issuer=settings.jwt_hs256_issuer,
            audience=settings.jwt_hs256_audience,
            role_claim=settings.jwt_hs256_role_claim,
            tier_claim=settings.jwt_hs256_tier_claim,
            leeway_s=leeway,
        )
    return TokenChain(firebase=firebase, issuers=issuers, cache_size=settings.jwt_token_cache_size)
