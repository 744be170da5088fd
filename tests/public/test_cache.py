"""Shared response cache: miss → hit, 304, no-store, single flight, stale on error, purge."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from gateway.core.settings import Settings
from tests.support.audit import TEST_ACTOR
from tests.support.public import PublicApp, metric_value, public_app, write_tiers
from tests.support.upstream import LocalUpstream

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def _app(settings: Settings, upstream: LocalUpstream, tmp_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    tiers = write_tiers(tmp_path / "tiers.json")
    async with public_app(
        settings, parser_service_url=upstream.url, tiers_file=tiers, **overrides
    ) as app:
        yield app


async def _key(app: PublicApp) -> dict[str, str]:
    return {"X-API-Key": await app.key(tier="free")}


async def test_miss_then_hit_with_age_and_etag(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    async with _app(settings, upstream, tmp_path) as app:
        headers = await _key(app)
        first = await app.client.get("/v1/properties/P-1", headers=headers)
        second = await app.client.get("/v1/properties/P-1", headers=headers)
        text = await app.metrics()
    assert first.status_code == 200
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert second.json() == first.json()
    assert int(second.headers["age"]) >= 0
    assert second.headers["etag"] == first.headers["etag"]
    assert upstream.control.hits["/v1/properties/P-1"] == 1
    assert metric_value(text, "gateway_cache_requests_total", result="hit") == 1
    assert metric_value(text, "gateway_cache_requests_total", result="miss") == 1


async def test_upstream_gets_identity_not_credentials(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    async with _app(settings, upstream, tmp_path) as app:
        headers = await _key(app)
        response = await app.client.get(
            "/v1/properties/P-2", headers={**headers, "X-Request-ID": "req-abc"}
        )
    assert response.status_code == 200
    seen = upstream.control.last_headers
    assert seen["x-request-id"] == "req-abc"
    assert seen["x-gateway-tier"] == "free"
    assert seen["x-gateway-principal"].startswith("api_key:")
    assert seen["x-gateway-user"] == "alice"
    assert "x-api-key" not in seen
    assert "authorization" not in seen


async def test_if_none_match_gets_304(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    async with _app(settings, upstream, tmp_path) as app:
        headers = await _key(app)
        first = await app.client.get("/v1/properties/P-3", headers=headers)
        etag = first.headers["etag"]
        cached = await app.client.get(
            "/v1/properties/P-3", headers={**headers, "If-None-Match": etag}
        )
        other = await app.client.get(
            "/v1/properties/P-3", headers={**headers, "If-None-Match": '"nope"'}
        )
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    assert cached.headers["x-cache"] == "HIT"
    assert other.status_code == 200


async def test_no_store_is_never_cached(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    upstream.control.cache_control = "no-store"
    async with _app(settings, upstream, tmp_path) as app:
        headers = await _key(app)
        first = await app.client.get("/v1/properties/P-4", headers=headers)
        second = await app.client.get("/v1/properties/P-4", headers=headers)
    assert first.headers["x-cache"] == "BYPASS"
    assert second.headers["x-cache"] == "BYPASS"
    assert second.headers["cache-control"] == "no-store"
    assert upstream.control.hits["/v1/properties/P-4"] == 2


async def test_key_is_tier_and_sorted_query_not_user(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    async with _app(settings, upstream, tmp_path) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        bob = {"X-API-Key": await app.key(tier="free", user="bob")}
        a = await app.client.get("/v1/properties/search?state=FL&county=Dade", headers=alice)
        b = await app.client.get("/v1/properties/search?county=Dade&state=fl", headers=bob)
    assert a.headers["x-cache"] == "MISS"
    assert b.headers["x-cache"] == "HIT"
    assert upstream.control.total == 1


async def test_single_flight_100_concurrent_misses_one_upstream_call(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    # Long enough that all 100 requests reach the cache while the one fetch is in flight,
    # even on a loaded machine (a late arrival would be a plain HIT, not a wait).
    upstream.control.delay_s = 1.0
    async with _app(settings, upstream, tmp_path) as app:
        headers = await _key(app)
        await app.client.get("/v1/info")
        responses = await asyncio.gather(
            *(app.client.get("/v1/properties/P-SF", headers=headers) for _ in range(100))
        )
        text = await app.metrics()
    assert [r.status_code for r in responses] == [200] * 100
    assert upstream.control.hits["/v1/properties/P-SF"] == 1
    assert sorted(r.headers["x-cache"] for r in responses).count("MISS") == 1
    assert {r.json()["n"] for r in responses} == {1}
    assert metric_value(text, "gateway_singleflight_waits_total", outcome="served") == 99


async def test_single_flight_across_two_processes_sharing_redis(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    # Two apps with their own resources (own pools, own in-process maps) stand for two
    # gateway processes; only Redis is shared between them.
    upstream.control.delay_s = 0.3  # a slow origin: the behaviour under test, not a wait
    # The documented bound: a waiter gives up after SINGLEFLIGHT_WAIT_S (and a leader's
    # lock lapses after SINGLEFLIGHT_LOCK_S), then fetches itself. At the 5 s default a
    # busy machine reached it (100 requests on one event loop) and made 2 upstream calls;
    # so the bounds are set far out of reach, and the count is checked against them.
    bounds = {"singleflight_wait_s": 60.0, "singleflight_lock_s": 120.0}
    async with (
        _app(settings, upstream, tmp_path, **bounds) as one,
        _app(settings, upstream, tmp_path, **bounds) as two,
    ):
        headers = await _key(one)
        responses = await asyncio.gather(
            *(
                (one if i % 2 else two).client.get("/v1/properties/P-X", headers=headers)
                for i in range(100)
            )
        )
        texts = [await one.metrics(), await two.metrics()]
    assert [r.status_code for r in responses] == [200] * 100
    gave_up = sum(
        metric_value(text, "gateway_singleflight_waits_total", outcome="timeout") for text in texts
    )
    assert upstream.control.hits["/v1/properties/P-X"] == 1 + gave_up
    assert gave_up == 0  # a minute of waiting is out of any test machine's reach


async def test_stale_served_when_upstream_fails(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    upstream.control.cache_control = "max-age=1"
    async with _app(settings, upstream, tmp_path, cache_stale_window_s=60) as app:
        headers = await _key(app)
        fresh = await app.client.get("/v1/properties/P-5", headers=headers)
        await asyncio.sleep(1.2)
        upstream.control.status = 500
        stale = await app.client.get("/v1/properties/P-5", headers=headers)
        other = await app.client.get("/v1/properties/P-never-cached", headers=headers)
        text = await app.metrics()
    assert fresh.headers["x-cache"] == "MISS"
    assert stale.status_code == 200
    assert stale.headers["x-cache"] == "STALE"
    assert stale.json() == fresh.json()
    assert int(stale.headers["age"]) >= 1
    assert other.status_code == 503
    assert other.headers["content-type"] == "application/problem+json"
    assert metric_value(text, "gateway_cache_requests_total", result="stale") == 1


async def test_admin_purge_endpoint_and_role(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    async with _app(settings, upstream, tmp_path) as app:
        headers = await _key(app)
        await app.client.get("/v1/properties/P-6", headers=headers)
        await app.client.get("/v1/properties/P-7", headers=headers)
        denied = await app.client.post(
            "/v1/admin/cache/purge", json={"pattern": "/v1/properties/P-6*"}, headers=headers
        )
        await app.plane.users.set_role("root", "admin", actor=TEST_ACTOR)
        admin = {"X-API-Key": await app.key(tier="free", user="root")}
        purged = await app.client.post(
            "/v1/admin/cache/purge", json={"pattern": "/v1/properties/P-6*"}, headers=admin
        )
        again6 = await app.client.get("/v1/properties/P-6", headers=headers)
        again7 = await app.client.get("/v1/properties/P-7", headers=headers)
    assert denied.status_code == 403
    assert purged.status_code == 200
    assert purged.json() == {"purged": 1}
    assert again6.headers["x-cache"] == "MISS"
    assert again7.headers["x-cache"] == "HIT"
