"""The real gateway process: proxy credentials never reach its log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from gateway.core.resources import BackendUrls, open_resources
from gateway.core.settings import Settings
from gateway.proxy_pool.inventory import add_proxies
from tests.support.gateway_process import start_gateway
from tests.support.work import make_token

SECRET = "pa55-word-never-logged"


def test_credentials_never_appear_in_the_gateway_log(settings: Settings, tmp_path: Path) -> None:
    assert settings.redis_url is not None
    assert settings.database_url is not None
    proxy_url = f"http://carol:{SECRET}@127.0.0.2:3128"

    async def seed() -> tuple[str, str]:
        urls = BackendUrls(settings.redis_url or "", settings.database_url or "")
        async with open_resources(settings, urls) as resources:
            await add_proxies(resources, [proxy_url])
            return await make_token(resources, "parcel"), await make_token(resources, "party")

    parcel_token, party_token = asyncio.run(seed())
    gateway = start_gateway(
        tmp_path,
        {
            "REDIS_URL": settings.redis_url,
            "DATABASE_URL": settings.database_url,
            "REDIS_KEY_PREFIX": settings.redis_key_prefix,
            "LOG_LEVEL": "debug",
        },
    )
    try:
        gateway.wait_ready()
        with httpx.Client(timeout=5) as client:
            # A party worker leases the proxy and gets it banned (releases are the
            # holder's only); the ban then keeps parcel workers off it too.
            lease = client.post(
                gateway.url("party", "/internal/proxy/lease"),
                json={"worker_id": "w", "platform": "county-a"},
                headers={"X-Worker-Token": party_token},
            )
            assert lease.status_code == 200, lease.text
            assert lease.json()["proxy_url"] == proxy_url
            banned = client.post(
                gateway.url("party", "/internal/proxy/release"),
                json={
                    "worker_id": "w",
                    "proxy_lease_id": lease.json()["proxy_lease_id"],
                    "outcome": "banned",
                    "status_code": 403,
                },
                headers={"X-Worker-Token": party_token},
            )
            assert banned.status_code == 200
            refused = client.post(
                gateway.url("parcel", "/internal/proxy/lease"),
                json={"worker_id": "w", "platform": "county-a"},
                headers={"X-Worker-Token": parcel_token},
            )
            assert refused.status_code == 503
    finally:
        assert gateway.stop() == 0
    log = gateway.output()
    assert '"event": "proxy_banned"' in log  # the ban was logged...
    assert SECRET not in log  # ...without the credentials
    assert "carol:" not in log
