"""Settings of the public plane (port 8080): auth, tiers, limits, cache, upstream.

A mixin of `gateway.core.settings.Settings`, so the environment names stay flat
(`TIERS_FILE`, `FIREBASE_PROJECT_ID`, ...). The emulator guard lives here because it is
this plane's decision: with `FIREBASE_AUTH_EMULATOR_HOST` set, firebase-admin accepts
unsigned tokens, which must never happen in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from gateway.core.settings.identity import ClaimPath, IssuerList, OidcIssuer, check_issuer_url

_PRODUCTIONS = {"production"}


class PublicPlaneSettings(BaseSettings):
    """Public-plane settings; see the "Public plane" section of the README for each one."""

    # Firebase Authentication
    firebase_project_id: str | None = Field(default=None, pattern=r"^[a-z0-9-]{4,64}$")
    firebase_auth_emulator_host: str | None = None
    firebase_check_revoked: bool = False
    firebase_revocation_cache_s: float = Field(default=60.0, ge=0, le=3600)
    firebase_token_cache_margin_s: float = Field(default=30.0, ge=0, le=600)
    firebase_token_cache_size: int = Field(default=10_000, ge=0)
    firebase_verify_threads: int = Field(default=4, ge=1, le=64)

    # OpenID Connect issuers (JSON list, see gateway/core/settings/identity.py)
    oidc_issuers: list[OidcIssuer] = Field(default_factory=list)
    # An unknown `kid` refetches an issuer's JWKS at most once per this interval.
    oidc_jwks_refresh_min_s: float = Field(default=60.0, ge=0, le=3600)
    # Discovery and JWKS are refetched when older than this (keys the issuer withdrew
    # stop being accepted within this time).
    oidc_jwks_max_age_s: float = Field(default=3600.0, ge=1, le=86_400)
    oidc_fetch_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # HS256 tokens with a shared secret (Supabase)
    jwt_hs256_secret: SecretStr | None = None
    jwt_hs256_issuer: str | None = None
    jwt_hs256_audience: str | None = None
    jwt_hs256_role_claim: ClaimPath | None = None
    jwt_hs256_tier_claim: ClaimPath | None = None
    # Leeway on `exp`, `nbf` and `iat` of OIDC and HS256 tokens.
    jwt_clock_skew_s: int = Field(default=30, ge=0, le=300)
    jwt_token_cache_size: int = Field(default=10_000, ge=0)

    # Who is who
    tiers_file: Path | None = None
    default_tier: str = "free"
    anonymous_tier: str | None = None
    api_key_cache_s: float = Field(default=5.0, ge=0, le=300)
    user_cache_s: float = Field(default=30.0, ge=0, le=3600)
    auth_failure_limit: int = Field(default=20, ge=1)
    auth_failure_window_s: int = Field(default=60, ge=1, le=3600)
    trust_forwarded_for: bool = False

    # Limiter
    ratelimit_redis_timeout_s: float = Field(default=0.5, gt=0, le=10)
    # The quota period: a UTC day. Shorter only for tests and load experiments.
    quota_window_s: int = Field(default=86_400, ge=1, le=86_400)

    # Response cache
    cache_enabled: bool = True
    cache_default_ttl_s: int = Field(default=60, ge=0, le=86_400)
    cache_search_ttl_s: int = Field(default=30, ge=0, le=86_400)
    cache_stale_window_s: int = Field(default=300, ge=0, le=86_400)
    cache_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    singleflight_wait_s: float = Field(default=5.0, gt=0, le=60)
    singleflight_lock_s: float = Field(default=15.0, gt=0, le=120)

    # Upstream (PARSER_SERVICE_URL is a core setting) and its circuit breaker
    upstream_connect_timeout_s: float = Field(default=1.0, gt=0, le=30)
    upstream_read_timeout_s: float = Field(default=5.0, gt=0, le=120)
    breaker_fail_max: int = Field(default=5, ge=1)
    breaker_reset_timeout_s: float = Field(default=10.0, gt=0, le=600)
    retry_budget_ratio: float = Field(default=0.1, ge=0, le=1)
    retry_budget_min_per_s: float = Field(default=1.0, ge=0)

    # Web
    # `/docs` and `/openapi.json` on the public port (INTERNAL_DOCS_ENABLED: the others).
    public_docs_enabled: bool = True
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator(
        "firebase_auth_emulator_host",
        "firebase_project_id",
        "jwt_hs256_secret",
        "jwt_hs256_issuer",
        "jwt_hs256_audience",
        "jwt_hs256_role_claim",
        "jwt_hs256_tier_claim",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _tiers_configured(self) -> Self:
        # Read TIERS_FILE now so a bad file or an unknown DEFAULT_TIER/ANONYMOUS_TIER is
        # a one-line configuration error at start-up, not a traceback from the app.
        from gateway.core.settings.tiers import load_tiers

        tiers = load_tiers(self.tiers_file, self.default_tier)
        if self.anonymous_tier is not None and self.anonymous_tier not in tiers:
            raise ValueError(f"ANONYMOUS_TIER {self.anonymous_tier!r} is not a configured tier")
        return self

    @model_validator(mode="after")
    def _no_emulator_in_production(self) -> Self:
        environment = str(getattr(self, "environment", "development"))
        if self.firebase_auth_emulator_host and environment in _PRODUCTIONS:
            raise ValueError(
                "FIREBASE_AUTH_EMULATOR_HOST is set but ENVIRONMENT=production: the emulator "
                "accepts unsigned tokens; unset it (allowed only in development and test)"
            )
        return self

    @model_validator(mode="after")
    def _issuers_consistent(self) -> Self:
        secret = self.jwt_hs256_secret
        hs256 = (self.jwt_hs256_issuer, self.jwt_hs256_audience)
        if secret is None and any(hs256):
            raise ValueError(
                "JWT_HS256_ISSUER/JWT_HS256_AUDIENCE are set but JWT_HS256_SECRET is not"
            )
        if secret is not None:
            if not all(hs256):
                raise ValueError(
                    "JWT_HS256_SECRET needs JWT_HS256_ISSUER and JWT_HS256_AUDIENCE: the"
                    " issuer routes tokens to it and the audience is always checked"
                )
            # RFC 7518 3.2: an HS256 key must be at least as long as the hash (32 bytes).
            if len(secret.get_secret_value().encode()) < 32:
                raise ValueError("JWT_HS256_SECRET must be at least 32 bytes (RFC 7518 3.2)")
            check_issuer_url(str(self.jwt_hs256_issuer), "JWT_HS256_ISSUER")
        IssuerList(issuers=self.oidc_issuers, hs256_issuer=self.jwt_hs256_issuer)
        environment = str(getattr(self, "environment", "development"))
        if environment in _PRODUCTIONS:
            for item in self.oidc_issuers:
                if not item.issuer.startswith("https://"):
                    raise ValueError(
                        f"OIDC issuer {item.issuer!r} is not https but ENVIRONMENT=production:"
                        " its keys would be fetched over plain HTTP"
                    )
        return self
