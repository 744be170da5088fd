"""`/v1/properties` from the built-in origin (parcel tables), validation, web headers."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from gateway.core.settings import Settings
from tests.support.public import (
    insert_history,
    insert_parcel,
    metric_value,
    public_app,
    write_tiers,
)

pytestmark = pytest.mark.integration


@pytest.fixture(params=[True, False], ids=["fastpath", "stock"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Every properties test runs with the fast path on and with FASTPATH=off."""
    return settings.model_copy(update={"fastpath": request.param})


def _tiers(tmp_path: Path) -> Path:
    return write_tiers(
        tmp_path / "t.json",
        tiny={"rate_per_s": 100, "burst": 1000, "daily_quota": 0, "max_page_size": 2},
    )


async def test_property_history_and_404(settings: Settings, tmp_path: Path) -> None:
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        await insert_parcel(app.resources, "12-345", tax_amount_due="999.10")
        await insert_history(app.resources, "12-345", 4)
        headers = {"X-API-Key": await app.key(tier="tiny")}
        one = await app.client.get("/v1/properties/12-345", headers=headers)
        missing = await app.client.get("/v1/properties/nope", headers=headers)
        page1 = await app.client.get("/v1/properties/12-345/history", headers=headers)
        cursor = page1.json()["next_cursor"]
        page2 = await app.client.get(
            f"/v1/properties/12-345/history?cursor={cursor}", headers=headers
        )
        page3 = await app.client.get(
            f"/v1/properties/12-345/history?cursor={page2.json()['next_cursor']}",
            headers=headers,
        )
    assert one.status_code == 200
    body = one.json()
    assert body["parcel_id"] == "12-345"
    assert body["tax_amount_due"] == "999.10"
    assert body["state"] == "FL"
    assert "task_id" not in body
    assert "lease_id" not in body
    assert one.headers["x-cache"] == "MISS"
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    # 5 history rows, tier page size 2: 2 + 2 + 1.
    assert [len(p.json()["items"]) for p in (page1, page2, page3)] == [2, 2, 1]
    assert page3.json()["next_cursor"] is None


async def test_search_filters_and_cursor_pagination_capped_by_tier(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        for i in range(5):
            await insert_parcel(app.resources, f"A-{i}", tax_amount_due=str(100 * (i + 1)))
        await insert_parcel(app.resources, "B-1", state="TX", owner_name="Acme 100% LLC")
        headers = {"X-API-Key": await app.key(tier="tiny")}
        seen: list[str] = []
        url = "/v1/properties/search?state=fl&min_amount=150&limit=50"
        for _ in range(5):
            page = await app.client.get(url, headers=headers)
            assert page.status_code == 200
            items = page.json()["items"]
            assert len(items) <= 2
            seen += [p["parcel_id"] for p in items]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
            url = f"/v1/properties/search?state=fl&min_amount=150&limit=50&cursor={cursor}"
        owner = await app.client.get("/v1/properties/search?q=100%25", headers=headers)
        county = await app.client.get(
            "/v1/properties/search?county=miami-dade&lien_status=active&max_amount=200",
            headers=headers,
        )
    assert seen == ["A-1", "A-2", "A-3", "A-4"]
    assert [p["parcel_id"] for p in owner.json()["items"]] == ["B-1"]
    assert [p["parcel_id"] for p in county.json()["items"]] == ["A-0", "A-1"]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/properties/search?state=Florida",
        "/v1/properties/search?min_amount=-1",
        "/v1/properties/search?min_amount=10&max_amount=5",
        "/v1/properties/search?min_amount=abc",
        "/v1/properties/search?q=x",
        "/v1/properties/search?limit=0",
        "/v1/properties/search?cursor=%%%",
        "/v1/properties/search?cursor=bm90LWpzb24",
        "/v1/properties/bad%20id",
        "/v1/properties/ok/history?cursor=eyJrIjoiYSJ9",
    ],
)
async def test_bad_input_is_a_422_problem(settings: Settings, tmp_path: Path, url: str) -> None:
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        headers = {"X-API-Key": await app.key(tier="tiny")}
        response = await app.client.get(url, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/validation-error")


def _cursor(raw: str) -> str:
    """A cursor in the gateway's format around `raw`, the key's JSON text."""
    return base64.urlsafe_b64encode(f'{{"k":{raw}}}'.encode()).decode().rstrip("=")


# JSON spells what a query string cannot carry: a NUL and a lone surrogate.
_NUL_CURSOR = _cursor(json.dumps("A\x00B"))
_SURROGATE_CURSOR = _cursor('"\\ud800"')


@pytest.mark.parametrize(
    "url",
    [
        "/v1/properties/search?q=a%00b",
        "/v1/properties/search?county=a%00b",
        "/v1/properties/search?q=abc&nul%00name=1",
        "/v1/properties/12-345/history?limit=2&x=%00",
        "/v1/properties/12-345?x=%00",
        "/v1/me?x=%00",
        f"/v1/properties/search?cursor={_NUL_CURSOR}",
        f"/v1/properties/search?cursor={_SURROGATE_CURSOR}",
        f"/v1/properties/12-345/history?cursor={_cursor(str(2**63))}",
        f"/v1/properties/12-345/history?cursor={_cursor(str(-(2**63) - 1))}",
    ],
    ids=[
        "q",
        "county",
        "name",
        "history",
        "property",
        "me",
        "cursor-nul",
        "cursor-surrogate",
        "cursor-over-bigint",
        "cursor-under-bigint",
    ],
)
async def test_text_postgresql_cannot_hold_is_a_422_not_a_500(
    settings: Settings, tmp_path: Path, url: str
) -> None:
    """A NUL (or lone surrogate, or an id past bigint) reached SQL and failed there."""
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        await insert_parcel(app.resources, "12-345")
        headers = {"X-API-Key": await app.key(tier="tiny")}
        response = await app.client.get(url, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/validation-error")
    assert "\\u0000" not in response.text


async def test_the_nul_problem_names_the_parameter_not_its_value(settings: Settings) -> None:
    async with public_app(settings) as app:
        response = await app.client.get("/v1/properties/search?q=secret%00value&state=FL")
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "loc": ["query", "q"],
            "msg": "must not contain NUL or unpaired surrogate characters",
            "type": "string_not_storable",
        }
    ]
    assert "secret" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    "path", ["/v1/properties/12-345", "/v1/properties/12-345/history", "/v1/me"]
)
@pytest.mark.parametrize("kind", ["x-api-key", "authorization", "both"])
async def test_two_credentials_are_ambiguous_not_first_one_wins(
    settings: Settings, tmp_path: Path, path: str, kind: str
) -> None:
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        await insert_parcel(app.resources, "12-345")
        first, second = await app.key(tier="tiny"), await app.key(tier="tiny", user="bob")
        # Warm the cache, so the fast path would have a hit to serve.
        assert (await app.client.get(path, headers={"X-API-Key": first})).status_code == 200
        headers = {
            "x-api-key": [("X-API-Key", first), ("X-API-Key", second)],
            "authorization": [("Authorization", "Bearer a.b.c"), ("Authorization", "Bearer d")],
            "both": [("X-API-Key", first), ("Authorization", "Bearer a.b.c")],
        }[kind]
        response = await app.client.get(path, headers=headers)
        metrics = await app.metrics()
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "ambiguous_credentials"
    assert metric_value(metrics, "gateway_auth_failures_total", reason="ambiguous_credentials") == 1


async def test_security_headers_and_cors(settings: Settings) -> None:
    async with public_app(settings, cors_origins=["https://site.example"]) as app:
        info = await app.client.get("/v1/info")
        denied = await app.client.get("/v1/me")
        preflight = await app.client.options(
            "/v1/properties/x",
            headers={
                "Origin": "https://site.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "X-API-Key",
            },
        )
        foreign = await app.client.get("/v1/info", headers={"Origin": "https://evil.example"})
        allowed = await app.client.get("/v1/info", headers={"Origin": "https://site.example"})
    for response in (info, denied, preflight):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "server" not in response.headers
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://site.example"
    assert "access-control-allow-origin" not in foreign.headers
    assert allowed.headers["access-control-allow-origin"] == "https://site.example"
    assert "RateLimit" in allowed.headers["access-control-expose-headers"]


async def test_cors_preflights_are_requests_like_any_other(settings: Settings) -> None:
    """CORS sits inside the request context: preflights get an id, a log line, metrics."""
    async with public_app(settings, cors_origins=["https://site.example"]) as app:
        preflight = await app.client.options(
            "/v1/properties/x",
            headers={
                "Origin": "https://site.example",
                "Access-Control-Request-Method": "GET",
                "X-Request-ID": "preflight-1",
            },
        )
        metrics = await app.metrics()
    assert preflight.status_code == 200
    assert preflight.headers["x-request-id"] == "preflight-1"
    assert metric_value(metrics, "http_requests_total", method="OPTIONS", status="200") == 1


async def test_browsers_may_send_job_and_admin_requests_with_idempotency_keys(
    settings: Settings,
) -> None:
    async with public_app(settings, cors_origins=["https://site.example"]) as app:
        preflights = {
            method: await app.client.options(
                "/v1/admin/jobs/job_" + "0" * 24,
                headers={
                    "Origin": "https://site.example",
                    "Access-Control-Request-Method": method,
                    "Access-Control-Request-Headers": "X-API-Key, Idempotency-Key",
                },
            )
            for method in ("POST", "PATCH")
        }
    for method, preflight in preflights.items():
        assert preflight.status_code == 200, (method, preflight.text)
        assert method in preflight.headers["access-control-allow-methods"]
        assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
