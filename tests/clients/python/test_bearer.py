"""Bearer authentication: an HS256 token (as Supabase issues them), given as a string or
as a callable the client asks before every request (an expiring token, refreshed)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from taxlien_gateway import AsyncClient, Unauthorized

pytestmark = pytest.mark.integration

SECRET = "sdk-test-secret-with-at-least-32-characters-in-it"
ISSUER = "https://sdk.example/auth"


@pytest.fixture
def harness_overrides() -> dict[str, Any]:
    return {
        "jwt_hs256_secret": SecretStr(SECRET),
        "jwt_hs256_issuer": ISSUER,
        "jwt_hs256_audience": "authenticated",
    }


def token(sub: str = "user-7", ttl_s: int = 3600) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "authenticated", "sub": sub, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_a_bearer_token_authenticates_the_caller(base_url: str) -> None:
    async with AsyncClient(base_url, token=token()) as gw:
        me = await gw.me()
    assert me.kind == "user"
    assert me.id.endswith(":user-7")


async def test_a_token_callable_is_asked_before_every_request(base_url: str) -> None:
    issued: list[str] = []

    def fresh() -> str:
        issued.append(token(sub=f"user-{len(issued)}"))
        return issued[-1]

    async with AsyncClient(base_url, token=fresh) as gw:
        first, second = await gw.me(), await gw.me()
    assert len(issued) == 2
    assert (first.id.rsplit(":", 1)[-1], second.id.rsplit(":", 1)[-1]) == ("user-0", "user-1")


async def test_an_expired_token_is_unauthorized_with_its_reason(base_url: str) -> None:
    async with AsyncClient(base_url, token=token(ttl_s=-3600)) as gw:
        with pytest.raises(Unauthorized) as caught:
            await gw.me()
    assert caught.value.reason == "token_expired"


def test_api_key_and_token_together_are_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="not both"):
        AsyncClient("http://127.0.0.1:9", api_key="tlk_x", token="t")
