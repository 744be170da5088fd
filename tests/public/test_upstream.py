"""Circuit breaker per upstream against a real local server, and the retry budget."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from gateway.core.settings import Settings
from gateway.public.upstream import RetryBudget
from tests.support.ports import free_port
from tests.support.public import metric_value, public_app, write_tiers
from tests.support.upstream import LocalUpstream
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


async def test_breaker_opens_fails_fast_and_recovers(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    upstream.control.cache_control = "no-store"  # every request must reach the breaker
    async with public_app(
        settings,
        parser_service_url=upstream.url,
        tiers_file=write_tiers(tmp_path / "tiers.json"),
        breaker_fail_max=3,
        breaker_reset_timeout_s=1.0,
    ) as app:
        headers = {"X-API-Key": await app.key(tier="free")}
        ok = await app.client.get("/v1/properties/B-1", headers=headers)
        assert ok.status_code == 200

        upstream.control.status = 500
        failures = [await app.client.get("/v1/properties/B-1", headers=headers) for _ in range(3)]
        assert [r.status_code for r in failures] == [503] * 3
        reached = upstream.control.total
        assert reached == 4

        opened = [await app.client.get("/v1/properties/B-1", headers=headers) for _ in range(10)]
        assert [r.status_code for r in opened] == [503] * 10
        assert upstream.control.total == reached  # the open breaker never touched it
        body = opened[0].json()
        assert body["type"].endswith("/upstream-unavailable")
        assert body["dependency"] == "parser"
        assert 1 <= int(opened[0].headers["retry-after"]) <= 1
        text = await app.metrics()
        assert metric_value(text, "gateway_circuit_breaker_state", upstream="parser") == 2
        assert (
            metric_value(text, "gateway_upstream_requests_total", upstream="parser", status="500")
            == 3
        )

        upstream.control.status = 200

        async def recovered() -> bool:
            response = await app.client.get("/v1/properties/B-1", headers=headers)
            return response.status_code == 200

        await wait_until(recovered, what="the breaker closing after the upstream recovered")
        text = await app.metrics()
        assert metric_value(text, "gateway_circuit_breaker_state", upstream="parser") == 0
        after = [await app.client.get("/v1/properties/B-1", headers=headers) for _ in range(3)]
        assert [r.status_code for r in after] == [200] * 3


async def test_404_from_upstream_is_an_answer_not_a_failure(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    upstream.control.status = 404
    async with public_app(
        settings,
        parser_service_url=upstream.url,
        tiers_file=write_tiers(tmp_path / "tiers.json"),
        breaker_fail_max=2,
    ) as app:
        headers = {"X-API-Key": await app.key(tier="free")}
        responses = [await app.client.get("/v1/properties/N-1", headers=headers) for _ in range(5)]
    assert [r.status_code for r in responses] == [404] * 5
    assert upstream.control.total == 5


async def test_connect_error_is_retried_once_then_503(settings: Settings, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with public_app(
        settings, parser_service_url=dead, tiers_file=write_tiers(tmp_path / "tiers.json")
    ) as app:
        headers = {"X-API-Key": await app.key(tier="free")}
        response = await app.client.get("/v1/properties/C-1", headers=headers)
        text = await app.metrics()
    assert response.status_code == 503
    assert response.json()["dependency"] == "parser"
    # One attempt plus one retry, both refused.
    assert (
        metric_value(
            text, "gateway_upstream_requests_total", upstream="parser", status="connect_error"
        )
        == 2
    )


def test_retry_budget_is_bounded() -> None:
    budget = RetryBudget(ratio=0.1, min_per_s=0.0, cap=2)
    assert budget.try_spend()
    assert budget.try_spend()
    assert not budget.try_spend()
    for _ in range(10):
        budget.record_request()
    assert budget.try_spend()
    assert not budget.try_spend()


async def test_half_open_lets_exactly_one_probe_through(
    settings: Settings, upstream: LocalUpstream, tmp_path: Path
) -> None:
    upstream.control.cache_control = "no-store"
    async with public_app(
        settings,
        parser_service_url=upstream.url,
        tiers_file=write_tiers(tmp_path / "tiers.json"),
        breaker_fail_max=1,
        breaker_reset_timeout_s=0.5,
    ) as app:
        headers = {"X-API-Key": await app.key(tier="free")}
        upstream.control.status = 500
        assert (await app.client.get("/v1/properties/H-1", headers=headers)).status_code == 503
        before = upstream.control.total
        upstream.control.status = 200
        # The probe is held at the upstream until the other nine have been answered
        # (a 1 s delay was not "in flight" long enough on a busy machine).
        upstream.control.hold = release = threading.Event()
        await asyncio.sleep(0.6)  # the clock passes the reset timeout: the next call probes
        # Distinct ids: one key would be coalesced by the cache's single flight instead.
        calls = [
            asyncio.create_task(app.client.get(f"/v1/properties/H-{i}", headers=headers))
            for i in range(10)
        ]
        try:
            await wait_until(lambda: sum(c.done() for c in calls) == 9, what="9 answers")
        finally:
            release.set()
        responses = await asyncio.gather(*calls)
    assert upstream.control.total - before == 1
    assert sorted(r.status_code for r in responses) == [200] + [503] * 9
