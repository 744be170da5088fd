"""The cache-hit shortcut of `GET /v1/properties/{id}`: same answers as the route,
budget taken once per request, every other case left to FastAPI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.core.settings import Settings
from gateway.fastpath.cache_hit import PropertyHitShortcut
from gateway.public.authenticate import Credentials
from gateway.public.permissions import Scope as PermissionScope
from tests.support.audit import TEST_ACTOR
from tests.support.public import PublicApp, insert_parcel, metric_value, public_app, write_tiers

pytestmark = pytest.mark.integration

# Headers whose values differ between two responses by design.
_PER_RESPONSE = {"x-cache", "age", "x-request-id", "ratelimit", "cache-control"}


def _tiers(tmp_path: Path) -> Path:
    return write_tiers(
        tmp_path / "t.json",
        quota={"rate_per_s": 100, "burst": 1000, "daily_quota": 1000, "max_page_size": 5},
        slow={"rate_per_s": 0.01, "burst": 2, "daily_quota": 0, "max_page_size": 5},
    )


def _layers(app: ASGIApp) -> Iterator[Any]:
    layer: Any = app
    while layer is not None:
        yield layer
        layer = getattr(layer, "app", None)


class _HandOffs:
    """Counts the requests the shortcut passes on to FastAPI's routing."""

    def __init__(self, app: PublicApp) -> None:
        stack = app.client._transport.app.middleware_stack  # type: ignore[attr-defined]
        assert stack is not None, "send one request first: Starlette builds the stack lazily"
        shortcut = next(x for x in _layers(stack) if isinstance(x, PropertyHitShortcut))
        self.count = 0
        inner = shortcut.app

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            self.count += 1
            await inner(scope, receive, send)

        shortcut.app = counted


async def test_a_hit_is_served_in_front_of_fastapi_exactly_like_the_route(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        await insert_parcel(app.resources, "12-345")
        key = {"X-API-Key": await app.key(tier="quota")}
        assert (await app.client.get("/health")).status_code == 200
        handed = _HandOffs(app)
        miss = await app.client.get("/v1/properties/12-345", headers=key)
        assert handed.count == 1  # a miss is the route's job
        hit = await app.client.get("/v1/properties/12-345", headers=key)
        etag = hit.headers["etag"]
        not_modified = await app.client.get(
            "/v1/properties/12-345", headers={**key, "If-None-Match": etag}
        )
        assert handed.count == 1  # neither the hit nor the 304 reached FastAPI
        metrics = await app.metrics()

    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert hit.status_code == 200
    assert hit.content == miss.content
    assert hit.headers["etag"] == miss.headers["etag"]
    assert hit.headers["content-type"] == miss.headers["content-type"] == "application/json"
    # The same header set as the route's response: limiter, security, cache, request id.
    assert set(hit.headers) == set(miss.headers)
    for name in set(hit.headers) - _PER_RESPONSE:
        assert hit.headers[name] == miss.headers[name], name
    assert hit.headers["ratelimit-policy"] == '"burst";q=1000;w=10, "daily";q=1000;w=86400'
    assert hit.headers["x-content-type-options"] == "nosniff"
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert "ratelimit" in not_modified.headers
    # Logs and metrics name the route template, not the raw path.
    template = "/v1/properties/{parcel_id}"
    assert metric_value(metrics, "http_requests_total", handler=template, status="200") == 2
    assert metric_value(metrics, "http_requests_total", handler=template, status="304") == 1
    assert metric_value(metrics, "gateway_cache_requests_total", result="hit") == 2
    # One limiter check per request, whoever answered it; one at a time, one per batch.
    assert metric_value(metrics, "gateway_limiter_calls_total") == 3
    assert metric_value(metrics, "gateway_limiter_batches_total") == 3


async def test_every_request_takes_one_unit_of_budget_whoever_answers_it(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        await insert_parcel(app.resources, "A-1")
        key = await app.key(tier="quota")
        headers = {"X-API-Key": key}
        statuses = [
            (await app.client.get(f"/v1/properties/{pid}", headers=headers)).status_code
            for pid in ("A-1", "A-1", "A-1", "missing-1", "A-1")
        ]
        principal = await app.plane.authenticator.authenticate(Credentials((key,)), "127.0.0.1")
        used = await app.plane.limiter.usage_today(principal.limit_key)
    assert statuses == [200, 200, 200, 404, 200]
    assert used == 5  # miss, two hits, a 404 through the route, a hit: once each


async def test_failures_are_answered_as_the_routes_problems_and_counted_once(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        await insert_parcel(app.resources, "A-1")
        slow = {"X-API-Key": await app.key(tier="slow")}
        bad = await app.client.get("/v1/properties/A-1", headers={"X-API-Key": "tlk_nope"})
        none = await app.client.get("/v1/properties/A-1")
        ok = [
            (await app.client.get("/v1/properties/A-1", headers=slow)).status_code for _ in range(2)
        ]
        limited = await app.client.get("/v1/properties/A-1", headers=slow)
        metrics = await app.metrics()

    assert (bad.status_code, bad.json()["reason"]) == (401, "malformed_api_key")
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["instance"] == "/v1/properties/A-1"
    assert bad.json()["request_id"] == bad.headers["x-request-id"]
    assert (none.status_code, none.json()["reason"]) == (401, "missing_credentials")
    assert metric_value(metrics, "gateway_auth_failures_total", reason="malformed_api_key") == 1
    assert metric_value(metrics, "gateway_auth_failures_total", reason="missing_credentials") == 1
    assert ok == [200, 200]
    assert limited.status_code == 429
    assert limited.json()["type"].endswith("/rate-limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.headers["ratelimit"].startswith('"burst";r=0;')
    assert limited.headers["x-content-type-options"] == "nosniff"
    assert metric_value(metrics, "gateway_rate_limited_total", tier="slow", kind="rate") == 1


async def test_two_api_keys_on_a_cached_parcel_are_refused_by_the_shortcut(
    settings: Settings, tmp_path: Path
) -> None:
    """The shortcut read the first `X-API-Key` and served the hit under that identity."""
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        await insert_parcel(app.resources, "12-345")
        first, second = await app.key(tier="quota"), await app.key(tier="quota", user="bob")
        warm = await app.client.get("/v1/properties/12-345", headers={"X-API-Key": first})
        assert warm.status_code == 200
        handed = _HandOffs(app)
        both = await app.client.get(
            "/v1/properties/12-345", headers=[("X-API-Key", first), ("X-API-Key", second)]
        )
        assert handed.count == 0  # answered by the shortcut itself
    assert both.status_code == 401, both.text
    assert both.json()["reason"] == "ambiguous_credentials"
    assert both.headers["content-type"] == "application/problem+json"


async def test_other_requests_under_the_prefix_are_left_to_fastapi(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        await insert_parcel(app.resources, "search-1", state="GA")
        key = {"X-API-Key": await app.key(tier="quota")}
        assert (await app.client.get("/health")).status_code == 200
        handed = _HandOffs(app)
        anonymous_bad_id = await app.client.get("/v1/properties/bad%20id")
        bad_id = await app.client.get("/v1/properties/bad%20id", headers=key)
        search = await app.client.get("/v1/properties/search?state=GA", headers=key)
        head = await app.client.head("/v1/properties/search-1", headers=key)
        history = await app.client.get("/v1/properties/search-1/history", headers=key)
    # FastAPI's order stays: credentials (401) before parameter validation (422).
    assert anonymous_bad_id.status_code == 401
    assert bad_id.status_code == 422
    assert bad_id.json()["type"].endswith("/validation-error")
    # `search` is its own route, not a parcel id.
    assert search.status_code == 200
    assert [p["parcel_id"] for p in search.json()["items"]] == ["search-1"]
    assert head.status_code == 405
    assert history.status_code == 200
    assert handed.count == 5


async def test_a_key_without_properties_read_is_refused_even_on_a_hit(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        await insert_parcel(app.resources, "12-346")
        full = {"X-API-Key": await app.key(tier="quota")}
        narrow_key = await app.plane.api_keys.create(
            name="jobs only",
            tier="quota",
            user_uid="alice",
            actor=TEST_ACTOR,
            scopes=frozenset({PermissionScope.JOBS_READ}),
        )
        await app.client.get("/v1/properties/12-346", headers=full)  # now cached
        handed = _HandOffs(app)
        hit = await app.client.get("/v1/properties/12-346", headers=full)
        refused = await app.client.get(
            "/v1/properties/12-346", headers={"X-API-Key": narrow_key.secret}
        )
    assert hit.headers["x-cache"] == "HIT"
    assert refused.status_code == 403
    assert refused.json()["needed"] == "properties:read"
    assert handed.count == 0  # the shortcut refused it, as the route would have
