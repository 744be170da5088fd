"""Each port serves only its audience's routes and documents only those."""

from __future__ import annotations

import pytest

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from tests.conftest import FACTORIES, ClientFactory, app_client

pytestmark = pytest.mark.integration

OPS = {"/ready"}


async def test_public_port_does_not_serve_internal_routes(client_for: ClientFactory) -> None:
    async with client_for(Audience.PUBLIC) as public:
        assert (await public.get("/v1/info")).json()["audience"] == "public"
        response = await public.get("/internal/info")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("audience", [Audience.PARCEL, Audience.PARTY])
async def test_internal_ports_do_not_serve_public_routes(
    client_for: ClientFactory, audience: Audience
) -> None:
    async with client_for(audience) as client:
        assert (await client.get("/internal/info")).json()["audience"] == audience.value
        assert (await client.get("/v1/info")).status_code == 404


@pytest.mark.parametrize("audience", list(Audience))
async def test_openapi_lists_only_the_ports_routes(
    client_for: ClientFactory, audience: Audience
) -> None:
    async with client_for(audience) as client:
        paths = set((await client.get("/openapi.json")).json()["paths"])
        docs = await client.get("/docs")
    assert docs.status_code == 200
    assert paths >= OPS
    assert "/metrics" not in paths
    own_prefix = "/v1/" if audience is Audience.PUBLIC else "/internal/"
    for path in paths - OPS:
        assert path.startswith(own_prefix), path


async def test_parcel_and_party_openapi_documents_are_their_own(client_for: ClientFactory) -> None:
    async with client_for(Audience.PARCEL) as parcel, client_for(Audience.PARTY) as party:
        parcel_doc = (await parcel.get("/openapi.json")).json()
        party_doc = (await party.get("/openapi.json")).json()
    assert parcel_doc["info"]["title"] != party_doc["info"]["title"]
    assert "parcel" in parcel_doc["info"]["title"]
    assert "party" in party_doc["info"]["title"]


async def test_internal_docs_can_be_turned_off(resources: Resources) -> None:
    resources.settings = resources.settings.model_copy(update={"internal_docs_enabled": False})
    async with app_client(FACTORIES[Audience.PARCEL](resources)) as parcel:
        assert (await parcel.get("/openapi.json")).status_code == 404
        assert (await parcel.get("/docs")).status_code == 404
        assert (await parcel.get("/internal/info")).status_code == 200
    async with app_client(FACTORIES[Audience.PUBLIC](resources)) as public:
        assert (await public.get("/openapi.json")).status_code == 200
