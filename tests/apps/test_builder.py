"""What every port's app has in common: security headers, no slash redirects, the
query-text guard, docs switches."""

from __future__ import annotations

import pytest

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from tests.conftest import FACTORIES, ClientFactory, app_client

pytestmark = pytest.mark.integration

INFO = {Audience.PUBLIC: "/v1/info", Audience.PARCEL: "/internal/info"}
INFO[Audience.PARTY] = INFO[Audience.PARCEL]


@pytest.mark.parametrize("audience", list(Audience))
async def test_every_port_sends_the_security_headers(
    client_for: ClientFactory, audience: Audience
) -> None:
    async with client_for(audience) as client:
        responses = [
            await client.get(INFO[audience]),
            await client.get("/no-such-route"),
            await client.get("/ready"),
            await client.get("/health"),
        ]
        docs = await client.get("/docs")
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cross-origin-resource-policy"] == "same-site"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "server" not in response.headers
    # Swagger UI needs its scripts: the docs page keeps the other headers, not the CSP.
    assert docs.status_code == 200
    assert docs.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in docs.headers


@pytest.mark.parametrize("audience", list(Audience))
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_trailing_slash_is_a_404_problem_not_a_redirect(
    client_for: ClientFactory, audience: Audience, method: str
) -> None:
    path = INFO[audience] + "/" if method == "GET" else "/internal/tasks/"
    if audience is Audience.PUBLIC and method == "POST":
        path = "/v1/api-keys/"
    async with client_for(audience) as client:
        response = await client.request(method, path)
        ready = await client.get("/ready/")
    for answer in (response, ready):
        assert answer.status_code == 404, answer.headers
        assert "location" not in answer.headers
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("/not-found")


@pytest.mark.parametrize("audience", [Audience.PARCEL, Audience.PARTY])
async def test_internal_query_parameters_with_a_nul_are_refused_at_the_edge(
    client_for: ClientFactory, audience: Audience
) -> None:
    async with client_for(audience) as client:
        response = await client.get(
            "/internal/work", params={"worker_id": "w\x001", "platforms": "a"}
        )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["query", "worker_id"]
    # Refused before authentication: no token was sent, and the answer is not a 401.


async def test_public_docs_can_be_turned_off(resources: Resources) -> None:
    resources.settings = resources.settings.model_copy(update={"public_docs_enabled": False})
    async with app_client(FACTORIES[Audience.PUBLIC](resources)) as public:
        assert (await public.get("/openapi.json")).status_code == 404
        assert (await public.get("/docs")).status_code == 404
        assert (await public.get("/v1/info")).status_code == 200
    async with app_client(FACTORIES[Audience.PARCEL](resources)) as parcel:
        assert (await parcel.get("/openapi.json")).status_code == 200
