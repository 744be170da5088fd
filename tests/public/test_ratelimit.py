"""Exact token bucket + daily quota in Redis, IETF draft headers, 429 types, fallback."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.core.audience import Audience
from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import Settings
from gateway.core.settings.tiers import Tier
from gateway.public.metrics import public_metrics
from gateway.public.ratelimit import RateLimiter
from tests.support.public import metric_value, public_app, write_tiers
from tests.support.tcp_proxy import redis_proxy

pytestmark = pytest.mark.integration


def _budget(burst: int) -> Tier:
    """A tier of `burst` requests that (at 0.001/s) does not refill during a test."""
    return Tier(name=f"b{burst}", rate_per_s=0.001, burst=burst, daily_quota=0, max_page_size=10)


BUDGET_50 = _budget(50)


def _limiter(resources: Resources) -> RateLimiter:
    return RateLimiter(resources, public_metrics(resources.metrics.registry(Audience.PUBLIC)))


@contextlib.asynccontextmanager
async def _patient_resources(settings: Settings) -> AsyncIterator[Resources]:
    # Exactness is what these tests check, so give Redis a generous timeout: on a loaded
    # 2-core CI box 200 queued scripts can take longer than the production default, and
    # a timeout would (correctly) hand the decision to the per-process fallback.
    patient = settings.model_copy(update={"ratelimit_redis_timeout_s": 10.0})
    assert patient.redis_url
    assert patient.database_url
    async with open_resources(patient, BackendUrls(patient.redis_url, patient.database_url)) as r:
        yield r


async def test_200_concurrent_requests_against_50_admit_exactly_50(settings: Settings) -> None:
    async with _patient_resources(settings) as resources:
        limiter = _limiter(resources)
        decisions = await asyncio.gather(*(limiter.check("user:u1", BUDGET_50) for _ in range(200)))
    assert not any(d.fallback for d in decisions)
    assert sum(d.allowed for d in decisions) == 50
    assert {d.kind for d in decisions if not d.allowed} == {"rate"}


async def test_two_limiters_on_one_redis_share_the_budget(settings: Settings) -> None:
    async with _patient_resources(settings) as one, _patient_resources(settings) as two:
        limiters = _limiter(one), _limiter(two)
        decisions = await asyncio.gather(
            *(limiters[i % 2].check("user:u2", BUDGET_50) for i in range(200))
        )
    assert not any(d.fallback for d in decisions)
    assert sum(d.allowed for d in decisions) == 50


async def test_interleaved_principals_in_one_batch_each_get_their_own_exact_budget(
    settings: Settings,
) -> None:
    # The script keeps each principal's state in Lua while the batch runs and writes it
    # once at the end: every check must still see what the previous one of its principal
    # left, and the next batch must see the final state.
    budget_5 = _budget(5)
    async with _patient_resources(settings) as resources:
        limiter = _limiter(resources)
        principals = [f"user:mix-{i}" for i in range(3)]
        decisions = await asyncio.gather(
            *(limiter.check(principals[i % 3], budget_5) for i in range(21))
        )
        after = [await limiter.check(p, budget_5) for p in principals]
    assert not any(d.fallback for d in decisions + after)
    for i, principal in enumerate(principals):
        mine = decisions[i::3]
        assert [d.allowed for d in mine] == [True] * 5 + [False] * 2, principal
        assert [math.floor(d.tokens) for d in mine[:5]] == [4, 3, 2, 1, 0]
        assert [d.quota_used for d in mine] == [1, 2, 3, 4, 5, 5, 5]
    assert [d.allowed for d in after] == [False, False, False]
    assert [d.quota_used for d in after] == [5, 5, 5]


async def test_every_admitted_check_of_a_batch_gets_its_cached_response(
    settings: Settings,
) -> None:
    # The script sends a cached response once per call and refers to it from the other
    # checks that asked for it; each caller must still receive the whole response.
    budget_4 = _budget(4)
    async with _patient_resources(settings) as resources:
        limiter = _limiter(resources)
        hot, cold, absent = (resources.key("cache", name) for name in ("hot", "cold", "absent"))
        await resources.redis.set(hot, b"hot entry")
        await resources.redis.set(cold, b"cold entry")
        asks = [("user:a", hot), ("user:b", cold), ("user:a", hot), ("user:c", absent)] * 3
        decisions = await asyncio.gather(
            *(limiter.check(who, budget_4, prefetch=key) for who, key in asks)
        )
    assert not any(d.fallback for d in decisions)
    expected = {hot: b"hot entry", cold: b"cold entry", absent: None}
    for (who, key), decision in zip(asks, decisions, strict=True):
        assert decision.prefetch_done == decision.allowed
        assert decision.prefetched == (expected[key] if decision.allowed else None), who
    # user:a asked 6 times with a burst of 4: the last two were refused, read nothing.
    assert [d.allowed for (who, _), d in zip(asks, decisions, strict=True) if who == "user:a"] == [
        True
    ] * 4 + [False] * 2


async def test_a_state_key_holding_something_else_starts_a_full_bucket(
    settings: Settings,
) -> None:
    # Whatever an old deployment or an operator left under the key must not fail the
    # script: that would send every check of the batch to the per-process fallback.
    async with _patient_resources(settings) as resources:
        limiter = _limiter(resources)
        redis = resources.redis
        await redis.set(resources.key("rl", "user:garbage"), b"not a limit state")
        await redis.hset(resources.key("rl", "user:hash"), "tokens", "3")
        for principal in ("user:garbage", "user:hash"):
            decisions = [await limiter.check(principal, BUDGET_50) for _ in range(51)]
            assert not any(d.fallback for d in decisions)
            assert [d.allowed for d in decisions] == [True] * 50 + [False]
            assert decisions[49].quota_used == 50


async def test_quota_counts_only_admitted_requests_and_resets(
    settings: Settings, tmp_path: Path
) -> None:
    tiers = write_tiers(
        tmp_path / "t.json",
        q3={"rate_per_s": 1000, "burst": 1000, "daily_quota": 3, "max_page_size": 10},
    )
    async with public_app(settings, tiers_file=tiers, quota_window_s=2) as app:
        headers = {"X-API-Key": await app.key(tier="q3")}
        # The four requests must share one 2 s quota window. A busy machine can take
        # longer than a window: then they are sent again from the start of the next.
        for tries in range(1, 11):  # noqa: B007 - read after the loop
            await asyncio.sleep(2 - time.time() % 2 + 0.05)  # the clock reaches a window start
            window = time.time() // 2
            ok = [await app.client.get("/v1/me", headers=headers) for _ in range(3)]
            refused = await app.client.get("/v1/me", headers=headers)
            if time.time() // 2 == window:
                break
        else:
            raise AssertionError("no 2 s window held four requests in 10 tries")
        assert [r.status_code for r in ok] == [200, 200, 200]
        assert ok[-1].json()["usage"] == {"today": 3, "daily_quota": 3, "remaining": 0}
        assert refused.status_code == 429
        body = refused.json()
        assert body["type"] == "https://gateway.taxlien.dev/problems/quota-exceeded"
        assert body["limit"] == "quota"
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 2
        await asyncio.sleep(retry_after + 0.1)
        again = await app.client.get("/v1/me", headers=headers)
        text = await app.metrics()
    assert again.status_code == 200
    assert again.json()["usage"]["today"] == 1
    assert metric_value(text, "gateway_rate_limited_total", tier="q3", kind="quota") == tries


async def test_ietf_draft_headers_and_rate_problem(settings: Settings, tmp_path: Path) -> None:
    tiers = write_tiers(
        tmp_path / "t.json",
        small={"rate_per_s": 0.5, "burst": 2, "daily_quota": 100, "max_page_size": 10},
    )
    async with public_app(settings, tiers_file=tiers) as app:
        headers = {"X-API-Key": await app.key(tier="small")}
        first = await app.client.get("/v1/me", headers=headers)
        second = await app.client.get("/v1/me", headers=headers)
        third = await app.client.get("/v1/me", headers=headers)
        text = await app.metrics()
    assert first.headers["ratelimit-policy"] == '"burst";q=2;w=4, "daily";q=100;w=86400'
    match = re.fullmatch(
        r'"burst";r=(\d+);t=(\d+), "daily";r=(\d+);t=(\d+)', first.headers["ratelimit"]
    )
    assert match, first.headers["ratelimit"]
    assert match.group(1) == "1"
    assert match.group(3) == "99"
    assert 0 < int(match.group(4)) <= 86400
    assert second.status_code == 200
    assert third.status_code == 429
    assert third.headers["content-type"] == "application/problem+json"
    assert third.json()["type"] == "https://gateway.taxlien.dev/problems/rate-limited"
    assert third.json()["limit"] == "rate"
    assert third.headers["retry-after"] in {"1", "2"}
    assert third.headers["ratelimit"].startswith('"burst";r=0;')
    assert "ratelimit-policy" in third.headers
    assert metric_value(text, "gateway_rate_limited_total", tier="small", kind="rate") == 1


async def test_redis_down_uses_fallback_limiter_and_never_500(
    settings: Settings, tmp_path: Path
) -> None:
    assert settings.redis_url is not None
    proxy, proxied = redis_proxy(settings.redis_url)
    await proxy.start()
    tiers = write_tiers(
        tmp_path / "t.json",
        b3={"rate_per_s": 0.001, "burst": 3, "daily_quota": 0, "max_page_size": 10},
    )
    try:
        async with public_app(
            settings,
            redis_url=proxied,
            tiers_file=tiers,
        ) as app:
            headers = {"X-API-Key": await app.key(tier="b3")}
            assert (await app.client.get("/v1/me", headers=headers)).status_code == 200
            await proxy.cut()
            during = [await app.client.get("/v1/me", headers=headers) for _ in range(5)]
            text = await app.metrics()
            await proxy.restore()
            after = [await app.client.get("/v1/me", headers=headers) for _ in range(3)]
            text_after = await app.metrics()
    finally:
        await proxy.close()
    # The fallback bucket starts full (3) in this process: 3 admitted, then refused.
    assert [r.status_code for r in during] == [200, 200, 200, 429, 429]
    assert "ratelimit" in during[0].headers
    assert metric_value(text, "gateway_limiter_fallbacks_total") == 5
    # Back on Redis at once: its bucket still holds the 2 tokens the outage did not touch.
    assert [r.status_code for r in after] == [200, 200, 429]
    assert metric_value(text_after, "gateway_limiter_fallbacks_total") == 5
