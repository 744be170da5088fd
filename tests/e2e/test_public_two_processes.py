"""Exact rate limits across two real `gateway serve` processes sharing Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from tests.support.gateway_process import start_gateway
from tests.support.public import public_app, write_tiers

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def test_200_requests_over_two_processes_admit_exactly_50(
    settings: Settings, tmp_path: Path
) -> None:
    tiers = write_tiers(
        tmp_path / "t.json",
        b50={"rate_per_s": 0.001, "burst": 50, "daily_quota": 0, "max_page_size": 10},
    )
    async with public_app(settings, tiers_file=tiers) as app:
        key = await app.key(tier="b50")
    env = {
        "REDIS_URL": str(settings.redis_url),
        "DATABASE_URL": str(settings.database_url),
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "TIERS_FILE": str(tiers),
        "LOG_LEVEL": "warning",
        # Exactness is under test: no fallback decisions because a loaded box is slow.
        "RATELIMIT_REDIS_TIMEOUT_S": "10",
    }
    gateways = [start_gateway(tmp_path, env), start_gateway(tmp_path, env)]
    try:
        for gateway in gateways:
            await asyncio.to_thread(gateway.wait_ready)
        async with httpx.AsyncClient(
            timeout=30, limits=httpx.Limits(max_connections=200)
        ) as client:
            responses = await asyncio.gather(
                *(
                    client.get(gateways[i % 2].url("public", "/v1/me"), headers={"X-API-Key": key})
                    for i in range(200)
                )
            )
    finally:
        codes = [g.stop() for g in gateways]
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 50, statuses
    assert statuses.count(429) == 150
    # Per-process budgets would have admitted 100: the one budget was shared exactly.
    assert codes == [0, 0]
