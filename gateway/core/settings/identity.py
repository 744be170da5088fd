"""Settings of the token issuers besides Firebase: OIDC issuers and one HS256 issuer.

`OIDC_ISSUERS` is a JSON list, one object per issuer::

    OIDC_ISSUERS='[{"issuer": "https://auth.example.com/realms/main",
                    "audience": "tax-lien-gateway",
                    "role_claim": "realm_access.roles", "tier_claim": "plan"}]'

Each issuer's `name` namespaces its users' ids (`<name>:<sub>`), so two issuers that
hand out the same `sub` never share a user row; by default it is the issuer URL without
its scheme and trailing slash, which is unique whenever the issuers are (two realms on
one host differ by path).
"""

from __future__ import annotations

from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A dotted path into the verified claims (`realm_access.roles`, `app_metadata.tier`).
ClaimPath = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^.\s]+(\.[^.\s]+)*$")]
IssuerName = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9._/:-]+$")]

FIREBASE_ISSUER_PREFIX = "https://securetoken.google.com/"


def default_issuer_name(issuer: str) -> str:
    """`https://auth.example.com/realms/main/` -> `auth.example.com/realms/main`."""
    parts = urlsplit(issuer)
    return (parts.netloc + parts.path).rstrip("/")


def check_issuer_url(value: str, setting: str) -> str:
    """An `iss` value the gateway can route on: an absolute http(s) URL, no query."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{setting} must be an http(s) URL naming a host, got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"{setting} must not have a query or fragment")
    if value.startswith(FIREBASE_ISSUER_PREFIX):
        raise ValueError(f"{setting}: Firebase tokens are configured with FIREBASE_PROJECT_ID")
    return value


class OidcIssuer(BaseModel):
    """One OpenID Provider whose RS256/ES256 tokens the public port accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Exactly the token's `iss`; discovery is read from `<issuer>/.well-known/openid-configuration`.
    issuer: str
    # The `aud` a token must carry (one of them, when a list).
    audience: Annotated[list[str], Field(min_length=1)]
    name: IssuerName | None = None
    role_claim: ClaimPath | None = None
    tier_claim: ClaimPath | None = None

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        return check_issuer_url(value, "OIDC_ISSUERS[].issuer")

    @field_validator("audience", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("audience")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if any(not a.strip() for a in value):
            raise ValueError("OIDC_ISSUERS[].audience entries must not be empty")
        return value

    @property
    def user_namespace(self) -> str:
        """The prefix of this issuer's user ids."""
        return self.name or default_issuer_name(self.issuer)

    @property
    def discovery_url(self) -> str:
        """Where the issuer publishes its OpenID configuration."""
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


class IssuerList(BaseModel):
    """Cross-checks of the configured issuers (unique issuers and namespaces)."""

    issuers: list[OidcIssuer]
    hs256_issuer: str | None = None

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        names: set[str] = set()
        for item in self.issuers:
            if item.issuer in seen:
                raise ValueError(f"OIDC_ISSUERS lists {item.issuer!r} twice")
            seen.add(item.issuer)
            if item.user_namespace in names:
                raise ValueError(
                    f"OIDC_ISSUERS: two issuers share the user namespace {item.user_namespace!r};"
                    " give one a distinct `name`"
                )
            names.add(item.user_namespace)
        if self.hs256_issuer is not None:
            if self.hs256_issuer in seen:
                raise ValueError("JWT_HS256_ISSUER is also listed in OIDC_ISSUERS")
            if default_issuer_name(self.hs256_issuer) in names:
                raise ValueError("JWT_HS256_ISSUER's user namespace is taken by an OIDC issuer")
        return self
