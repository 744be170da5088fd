"""OIDC issuers against a REAL OpenID Provider (npm `oidc-provider`, started locally).

Tokens come from the provider's token endpoint (client_credentials, RFC 9068 JWT access
tokens); the gateway reads the provider's discovery document and JWKS over HTTP. Tokens
the provider would never issue (expired, `alg: none`, ...) are minted with its own key.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import jwt
import pytest
from sqlalchemy import text

from gateway.core.settings import Settings
from gateway.core.settings.identity import OidcIssuer
from tests.support.oidc_provider import AUDIENCE, OidcProvider, new_key
from tests.support.ports import free_port
from tests.support.public import PublicApp, metric_value, public_app, write_tiers

pytestmark = pytest.mark.integration


def _issuer(provider: OidcProvider, **fields: Any) -> OidcIssuer:
    return OidcIssuer(issuer=provider.issuer, audience=AUDIENCE, **fields)


def _settings(settings: Settings, *issuers: OidcIssuer, **overrides: Any) -> Settings:
    return settings.model_copy(
        update={"oidc_issuers": list(issuers), "user_cache_s": 0, **overrides}
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _namespace(provider: OidcProvider) -> str:
    return provider.issuer.removeprefix("http://")


async def _me(app: PublicApp, token: str) -> Any:
    return await app.client.get("/v1/me", headers=_bearer(token))


async def test_discovery_names_the_issuer_and_its_algorithms(oidc_provider: OidcProvider) -> None:
    document = oidc_provider.discovery()
    assert document["issuer"] == oidc_provider.issuer
    assert {"RS256", "ES256"} <= set(document["id_token_signing_alg_values_supported"])
    assert document["jwks_uri"].startswith(oidc_provider.issuer)


@pytest.mark.parametrize("client_id", ["rs-client", "es-client"])
async def test_real_tokens_are_accepted_and_the_user_recorded_under_its_issuer(
    settings: Settings, oidc_provider: OidcProvider, client_id: str
) -> None:
    token = oidc_provider.token(client_id)
    assert jwt.get_unverified_header(token)["alg"] == oidc_provider.clients[client_id].alg
    async with public_app(_settings(settings, _issuer(oidc_provider))) as app:
        first = await _me(app, token)
        second = await _me(app, token)
        async with app.resources.sessionmaker() as session:
            row = (
                await session.execute(
                    text("SELECT uid, tier, role FROM users WHERE uid = :uid"),
                    {"uid": f"{_namespace(oidc_provider)}:{client_id}"},
                )
            ).one_or_none()
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["kind"] == "user"
    assert body["id"] == f"{_namespace(oidc_provider)}:{client_id}"
    assert body["role"] == "user"
    assert body["tier"]["name"] == "free"
    assert second.json()["usage"]["today"] == 2
    assert row is not None


async def test_role_and_tier_come_from_the_configured_claim_paths(
    settings: Settings, oidc_provider: OidcProvider, tmp_path: Any
) -> None:
    tiers = write_tiers(
        tmp_path / "t.json",
        pro={"rate_per_s": 50, "burst": 100, "daily_quota": 5000, "max_page_size": 100},
    )
    token = oidc_provider.token("admin-client")
    mapped = _issuer(oidc_provider, role_claim="realm_access.roles", tier_claim="plan")
    async with public_app(_settings(settings, mapped, tiers_file=tiers)) as app:
        with_paths = (await _me(app, token)).json()
    async with public_app(_settings(settings, _issuer(oidc_provider), tiers_file=tiers)) as app:
        without_paths = (await _me(app, token)).json()
    assert (with_paths["role"], with_paths["tier"]["name"]) == ("admin", "pro")
    # Without claim paths the IdP's claims grant nothing: the users row decides.
    assert (without_paths["role"], without_paths["tier"]["name"]) == ("user", "free")


async def test_two_issuers_with_the_same_sub_are_two_users(
    settings: Settings, oidc_provider: OidcProvider, fresh_provider: OidcProvider
) -> None:
    one, other = oidc_provider.token("rs-client"), fresh_provider.token("rs-client")
    s = _settings(settings, _issuer(oidc_provider), _issuer(fresh_provider, name="second"))
    async with public_app(s) as app:
        first, second = (await _me(app, one)).json(), (await _me(app, other)).json()
    assert jwt.decode(one, options={"verify_signature": False})["sub"] == "rs-client"
    assert jwt.decode(other, options={"verify_signature": False})["sub"] == "rs-client"
    assert first["id"] == f"{_namespace(oidc_provider)}:rs-client"
    assert second["id"] == "second:rs-client"
    assert first["usage"]["today"] == second["usage"]["today"] == 1


def _refused(provider: OidcProvider, case: str) -> str:
    now = int(time.time())
    rsa_key = provider.key("RS256")
    header = {"alg": "none", "typ": "JWT"}
    claims = {"iss": provider.issuer, "aud": AUDIENCE, "sub": "x", "exp": now + 300}
    if case == "expired":
        return provider.mint(iat=now - 3600, exp=now - 600)
    if case == "not_yet_valid":
        return provider.mint(nbf=now + 600)
    if case == "wrong_audience":
        return provider.token("rs-client", audience="https://someone-else.test")
    if case == "wrong_issuer":
        return provider.mint(iss="https://issuer.nobody.configured")
    if case == "alg_none":
        return jwt.api_jws.PyJWS().encode(
            json.dumps(claims).encode(),
            None,  # type: ignore[arg-type]  # "none" signs with no key at all
            algorithm="none",
            headers=header,
        )
    if case == "hs256_with_public_key":
        # The classic key-confusion attack: the public key used as an HMAC secret.
        return _hs256_with(rsa_key.public_pem(), claims, rsa_key.kid)
    if case == "forged_signature":
        return provider.mint(key=type(rsa_key)(rsa_key.kid, "RS256", new_key("RS256").private))
    if case == "missing_sub":
        return provider.mint(sub=None)
    if case == "alg_of_another_key":
        # An RSA kid with an EC signature: the key's alg is pinned.
        es = provider.key("ES256")
        return jwt.encode(claims, es.private, algorithm="ES256", headers={"kid": rsa_key.kid})
    raise AssertionError(case)


def _hs256_with(secret: bytes, claims: dict[str, Any], kid: str) -> str:
    import base64
    import hashlib
    import hmac
    import json

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    # PyJWT itself refuses PEM keys as HMAC secrets, so the attacker's token is hand-made.
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "token_expired"),
        ("not_yet_valid", "token_not_yet_valid"),
        ("wrong_audience", "wrong_audience"),
        ("wrong_issuer", "unknown_issuer"),
        ("alg_none", "alg_not_allowed"),
        ("hs256_with_public_key", "alg_not_allowed"),
        ("alg_of_another_key", "alg_not_allowed"),
        ("forged_signature", "bad_signature"),
        ("missing_sub", "missing_claim"),
    ],
)
async def test_bad_tokens_are_401_with_distinct_reasons(
    settings: Settings, oidc_provider: OidcProvider, case: str, reason: str
) -> None:
    token = _refused(oidc_provider, case)
    async with public_app(_settings(settings, _issuer(oidc_provider), jwt_clock_skew_s=5)) as app:
        response = await _me(app, token)
        metrics = await app.metrics()
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == reason
    assert metric_value(metrics, "gateway_auth_failures_total", reason=reason) == 1


async def test_clock_skew_is_allowed_up_to_the_setting(
    settings: Settings, oidc_provider: OidcProvider
) -> None:
    now = int(time.time())
    token = oidc_provider.mint(iat=now - 600, exp=now - 60)  # expired a minute ago
    async with public_app(_settings(settings, _issuer(oidc_provider), jwt_clock_skew_s=300)) as app:
        lenient = await _me(app, token)
    async with public_app(_settings(settings, _issuer(oidc_provider), jwt_clock_skew_s=5)) as app:
        strict = await _me(app, token)
    assert lenient.status_code == 200, lenient.text
    assert strict.json()["reason"] == "token_expired"


async def test_rotation_refreshes_once_and_accepts_the_new_kid(
    settings: Settings, fresh_provider: OidcProvider
) -> None:
    old = fresh_provider.token("rs-client")
    async with public_app(_settings(settings, _issuer(fresh_provider))) as app:
        before = await _me(app, old)
        fresh_provider.rotate()
        new = fresh_provider.token("rs-client")
        assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
        # Many concurrent first sights of the new kid share one JWKS refetch.
        answers = await asyncio.gather(*(_me(app, new) for _ in range(8)))
    counts = fresh_provider.counts()
    assert before.status_code == 200, before.text
    assert [a.status_code for a in answers] == [200] * 8
    assert counts["discovery"] == 1
    assert counts["jwks"] == 2  # the first load, then one refresh for the new kid


async def test_a_flood_of_unknown_kids_refetches_the_jwks_once(
    settings: Settings, fresh_provider: OidcProvider
) -> None:
    good = fresh_provider.token("es-client")
    rsa_key = fresh_provider.key("RS256")

    def made_up_kid() -> str:
        forged = type(rsa_key)(f"kid-{uuid.uuid4().hex}", "RS256", rsa_key.private)
        return fresh_provider.mint(key=forged)

    async with public_app(
        _settings(settings, _issuer(fresh_provider), auth_failure_limit=1000)
    ) as app:
        assert (await _me(app, good)).status_code == 200
        concurrent = await asyncio.gather(*(_me(app, made_up_kid()) for _ in range(10)))
        sequential = [await _me(app, made_up_kid()) for _ in range(10)]
        still_good = await _me(app, good)
    reasons = {r.json()["reason"] for r in (*concurrent, *sequential)}
    assert reasons == {"unknown_key"}
    assert fresh_provider.counts()["jwks"] == 2  # the first load and a single refresh
    assert still_good.status_code == 200


async def test_an_unreachable_issuer_is_a_503_not_a_401(settings: Settings) -> None:
    issuer = OidcIssuer(issuer=f"http://127.0.0.1:{free_port()}", audience=AUDIENCE)
    now = int(time.time())
    token = jwt.encode(
        {"iss": issuer.issuer, "aud": AUDIENCE, "sub": "x", "exp": now + 60},
        new_key("RS256").private,
        algorithm="RS256",
        headers={"kid": "k"},
    )
    async with public_app(_settings(settings, issuer, oidc_fetch_timeout_s=2)) as app:
        response = await _me(app, token)
    assert response.status_code == 503, response.text
    assert response.json()["dependency"] == "oidc"
