"""Request ids, body limits and the last-resort 500, on a real app stack."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter
from pydantic import BaseModel

from gateway.apps.builder import build_app
from gateway.core.audience import Audience
from gateway.core.resources import Resources
from tests.conftest import app_client

pytestmark = pytest.mark.integration

router = APIRouter()


class Item(BaseModel):
    name: str
    count: int


@router.post("/v1/items")
async def create_item(item: Item) -> Item:
    return item


@router.get("/v1/boom")
async def boom() -> None:
    raise RuntimeError("database password is hunter2")


@pytest.fixture
async def client(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(audience=Audience.PUBLIC, resources=resources, title="test", routers=[router])
    async with app_client(app) as c:
        yield c


def _assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    for member in ("type", "title", "status", "detail", "instance", "request_id"):
        assert member in body, member
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_incoming_request_id_is_kept_and_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "abc-123.def"})
    assert response.headers["x-request-id"] == "abc-123.def"


@pytest.mark.parametrize("bad", ["has space", "x" * 200, "<script>"])
async def test_insane_request_id_is_replaced(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": bad})
    generated = response.headers["x-request-id"]
    assert generated != bad
    assert len(generated) == 32


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = _assert_problem(await client.get("/nope"), 404)
    assert body["instance"] == "/nope"


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    _assert_problem(await client.delete("/ready"), 405)


async def test_validation_errors_list_fields_without_values(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/items", json={"name": "secret-token-value", "count": "many"})
    body = _assert_problem(response, 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert [e["loc"] for e in errors] == [["body", "count"]]
    assert "secret-token-value" not in response.text


async def test_malformed_json_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/items", content=b"{not json", headers={"content-type": "application/json"}
    )
    _assert_problem(response, 422)


async def test_declared_oversize_body_is_413(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    limit = resources.settings.max_body_bytes
    response = await client.post(
        "/v1/items",
        content=b"x" * (limit + 1),
        headers={"content-type": "application/json"},
    )
    _assert_problem(response, 413)


async def test_streamed_oversize_body_is_413(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    limit = resources.settings.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(limit // 4096 + 2):
            yield b"x" * 4096

    response = await client.post(
        "/v1/items", content=chunks(), headers={"content-type": "application/json"}
    )
    _assert_problem(response, 413)


async def test_unhandled_exception_is_a_500_problem_without_traceback(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    response = await client.get("/v1/boom")
    body = _assert_problem(response, 500)
    assert "Traceback" not in response.text
    assert "hunter2" not in response.text
    assert body["detail"] == "Internal server error"
    logged = capsys.readouterr().out
    assert "unhandled_exception" in logged or "Traceback" in logged


async def test_access_log_line_has_the_request_fields(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.core.logs import configure_logging
    from gateway.core.settings import LogFormat

    configure_logging("info", LogFormat.JSON)
    await client.get("/v1/info", headers={"X-Request-ID": "trace-me-1"})
    await client.post("/v1/items", json={"name": "a", "count": 1})
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    request_lines = [line for line in lines if line["event"] == "request"]
    assert request_lines
    post = request_lines[-1]
    assert post["route"] == "/v1/items"
    assert post["method"] == "POST"
    assert post["status"] == 200
    assert post["audience"] == "public"
    assert isinstance(post["duration_ms"], float)
    assert "timestamp" in post
    assert "level" in post
    assert len(post["request_id"]) == 32
