"""HS256 tokens with a shared secret (as Supabase issues them), made with PyJWT."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import SecretStr, ValidationError

from gateway.core.settings import Settings
from gateway.core.settings.identity import OidcIssuer
from tests.support.public import metric_value, public_app, write_tiers

pytestmark = pytest.mark.integration

SECRET = "super-secret-jwt-token-with-at-least-32-characters-long"
ISSUER = "https://project-ref.supabase.co/auth/v1"
AUDIENCE = "authenticated"


@pytest.fixture
def hs_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "jwt_hs256_secret": SecretStr(SECRET),
            "jwt_hs256_issuer": ISSUER,
            "jwt_hs256_audience": AUDIENCE,
            "user_cache_s": 0,
        }
    )


def _token(secret: str = SECRET, algorithm: str = "HS256", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "8d0fd2b3-9ca7-4d9e-a95f-9e13dded323e",
        "email": "supa@example.com",
        "role": "authenticated",  # Supabase's PostgreSQL role: never a gateway role
        "app_metadata": {"provider": "email", "tier": "pro", "gateway_role": "admin"},
        "iat": now,
        "exp": now + 3600,
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, secret, algorithm=algorithm)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_supabase_token_is_accepted_as_a_namespaced_user(hs_settings: Settings) -> None:
    async with public_app(hs_settings) as app:
        response = await app.client.get("/v1/me", headers=_bearer(_token()))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "project-ref.supabase.co/auth/v1:8d0fd2b3-9ca7-4d9e-a95f-9e13dded323e"
    assert body["email"] == "supa@example.com"
    assert (body["role"], body["tier"]["name"]) == ("user", "free")


async def test_role_and_tier_claim_paths(hs_settings: Settings, tmp_path: Path) -> None:
    tiers = write_tiers(
        tmp_path / "t.json",
        pro={"rate_per_s": 50, "burst": 100, "daily_quota": 5000, "max_page_size": 100},
    )
    s = hs_settings.model_copy(
        update={
            "tiers_file": tiers,
            "jwt_hs256_role_claim": "app_metadata.gateway_role",
            "jwt_hs256_tier_claim": "app_metadata.tier",
        }
    )
    async with public_app(s) as app:
        body = (await app.client.get("/v1/me", headers=_bearer(_token()))).json()
    assert (body["role"], body["tier"]["name"]) == ("admin", "pro")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: _token(secret="another-secret-of-at-least-32-characters!!"), "bad_signature"),
        (lambda: _token(aud="anon-but-not-ours"), "wrong_audience"),
        (lambda: _token(exp=int(time.time()) - 600), "token_expired"),
        (lambda: _token(secret=SECRET * 2, algorithm="HS512"), "alg_not_allowed"),
        (lambda: _token(secret="", algorithm="none"), "alg_not_allowed"),
        (lambda: _token(sub=None), "missing_claim"),
        (lambda: _token(exp="9999999999"), "malformed_token"),
        (lambda: _token(iss="https://other-ref.supabase.co/auth/v1"), "unknown_issuer"),
        (lambda: "not-a-jwt", "malformed_token"),
    ],
    ids=[
        "wrong-secret",
        "wrong-audience",
        "expired",
        "hs512",
        "alg-none",
        "no-sub",
        "exp-string",
        "unknown-issuer",
        "garbage",
    ],
)
async def test_bad_tokens_are_401_with_reasons(
    hs_settings: Settings, token: Any, reason: str
) -> None:
    async with public_app(hs_settings) as app:
        response = await app.client.get("/v1/me", headers=_bearer(token()))
        metrics = await app.metrics()
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == reason
    assert metric_value(metrics, "gateway_auth_failures_total", reason=reason) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"JWT_HS256_SECRET": "short", "JWT_HS256_ISSUER": ISSUER, "JWT_HS256_AUDIENCE": "a"},
            "at least 32 bytes",
        ),
        ({"JWT_HS256_SECRET": SECRET, "JWT_HS256_ISSUER": ISSUER}, "JWT_HS256_AUDIENCE"),
        ({"JWT_HS256_ISSUER": ISSUER, "JWT_HS256_AUDIENCE": AUDIENCE}, "JWT_HS256_SECRET is not"),
        (
            {
                "OIDC_ISSUERS": '[{"issuer": "https://a.test", "audience": "x"},'
                ' {"issuer": "https://a.test", "audience": "y"}]'
            },
            "twice",
        ),
        (
            {
                "OIDC_ISSUERS": '[{"issuer": "https://a.test/", "audience": "x"},'
                ' {"issuer": "https://a.test", "audience": "y"}]'
            },
            "namespace",
        ),
        ({"OIDC_ISSUERS": '[{"issuer": "ftp://a.test", "audience": "x"}]'}, r"http\(s\) URL"),
        (
            {"OIDC_ISSUERS": '[{"issuer": "https://securetoken.google.com/p", "audience": "p"}]'},
            "FIREBASE_PROJECT_ID",
        ),
        (
            {
                "ENVIRONMENT": "production",
                "OIDC_ISSUERS": '[{"issuer": "http://idp.internal", "audience": "x"}]',
            },
            "not https",
        ),
    ],
)
def test_unsafe_or_inconsistent_issuer_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, str], message: str
) -> None:
    for name, value in fields.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None)


def test_oidc_issuers_parse_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "OIDC_ISSUERS",
        '[{"issuer": "https://auth.example.com/realms/main", "audience": "gw",'
        ' "role_claim": "realm_access.roles"}]',
    )
    parsed = Settings(_env_file=None).oidc_issuers
    assert parsed == [
        OidcIssuer(
            issuer="https://auth.example.com/realms/main",
            audience=["gw"],
            role_claim="realm_access.roles",
        )
    ]
    assert parsed[0].user_namespace == "auth.example.com/realms/main"
