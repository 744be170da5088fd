"""What the documents say about errors, credentials and operation ids."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from tests.conftest import FACTORIES, ClientFactory, app_client

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


async def _document(client_for: ClientFactory, audience: Audience) -> dict[str, Any]:
    async with client_for(audience) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


@pytest.mark.parametrize("audience", list(Audience))
async def test_every_error_answer_is_a_problem_document(
    client_for: ClientFactory, audience: Audience
) -> None:
    document = await _document(client_for, audience)
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == [PROBLEM], (method, path, status)
        assert "503" in operation["responses"], (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_public_operations_name_their_errors_and_credentials(
    client_for: ClientFactory,
) -> None:
    document = await _document(client_for, Audience.PUBLIC)
    job = document["paths"]["/v1/jobs/{job_id}"]["get"]
    assert job["operationId"] == "getJob"
    assert {"401", "403", "404", "422", "429", "503"} <= set(job["responses"])
    assert job["security"] == [{"apiKey": []}, {"bearerToken": []}]
    assert "Retry-After" in job["responses"]["429"]["headers"]
    cancel = document["paths"]["/v1/jobs/{job_id}/cancel"]["post"]
    assert "409" in cancel["responses"]
    # POSTs take an Idempotency-Key, with the answers the idempotency layer adds.
    assert "Idempotency-Key" in [p["name"] for p in cancel["parameters"]]
    assert {"400", "409", "422"} <= set(cancel["responses"])
    info = document["paths"]["/v1/info"]["get"]
    assert info["security"] == []


@pytest.mark.parametrize("audience", [Audience.PARCEL, Audience.PARTY])
async def test_worker_operations_take_the_token_as_a_credential(
    client_for: ClientFactory, audience: Audience
) -> None:
    document = await _document(client_for, audience)
    enqueue = document["paths"]["/internal/tasks"]["post"]
    assert enqueue["operationId"] == "enqueue"
    assert enqueue["security"] == [{"workerToken": []}]
    assert {"401", "403", "413", "422", "503"} <= set(enqueue["responses"])
    names = [p["name"].lower() for p in enqueue.get("parameters", [])]
    assert "x-worker-token" not in names
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids))


async def test_the_yaml_document_follows_the_docs_setting(resources: Resources) -> None:
    resources.settings = resources.settings.model_copy(update={"public_docs_enabled": False})
    async with app_client(FACTORIES[Audience.PUBLIC](resources)) as public:
        assert (await public.get("/openapi.yaml")).status_code == 404
    async with app_client(FACTORIES[Audience.PARCEL](resources)) as parcel:
        response = await parcel.get("/openapi.yaml")
    assert response.status_code == 200
    assert yaml.safe_load(response.text)["info"]["title"] == "Tax-lien gateway: parcel workers"
