"""The client address of the real server: the TCP peer unless TRUST_FORWARDED_FOR is set.

uvicorn would otherwise rewrite it from `X-Forwarded-For` for any loopback peer, so a
local caller could pick a fresh address per request and escape per-IP limits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from tests.support.gateway_process import start_gateway
from tests.support.public import write_tiers

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def test_forwarded_for_does_not_split_an_anonymous_callers_budget(
    settings: Settings, tmp_path: Path
) -> None:
    tiers = write_tiers(
        tmp_path / "t.json",
        anon={"rate_per_s": 0.001, "burst": 3, "daily_quota": 0, "max_page_size": 10},
    )
    env = {
        "REDIS_URL": str(settings.redis_url),
        "DATABASE_URL": str(settings.database_url),
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "TIERS_FILE": str(tiers),
        "ANONYMOUS_TIER": "anon",
        "LOG_LEVEL": "warning",
        "RATELIMIT_REDIS_TIMEOUT_S": "10",
    }
    gateway = start_gateway(tmp_path, env)
    try:
        await asyncio.to_thread(gateway.wait_ready)
        async with httpx.AsyncClient(timeout=30) as client:
            statuses = [
                (
                    await client.get(
                        gateway.url("public", "/v1/properties/P-1"),
                        headers={"X-Forwarded-For": f"203.0.113.{i}"},
                    )
                ).status_code
                for i in range(4)
            ]
    finally:
        code = gateway.stop()
    # One bucket (the loopback peer's): three admitted (404: no such parcel), then 429.
    assert statuses == [404, 404, 404, 429]
    assert code == 0
