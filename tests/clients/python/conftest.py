"""Fixtures of the Python SDK's tests: a real gateway (the harness's public app on a real
uvicorn server, real Redis and PostgreSQL) and SDK clients of it.

The sync `Client` blocks, and the served gateway runs on the test's event loop, so sync
calls run in a thread (`in_thread`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.core.settings import Settings
from gateway.core.settings.tiers import DEFAULT_TIERS
from taxlien_gateway import AsyncClient, Retry, RetryPolicy
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.streams import served

T = TypeVar("T")

# A reconnecting follower waits for the stream's `retry:` hint: the smallest allowed.
OVERRIDES: dict[str, Any] = {"sse_retry_ms": 100, "webhook_allow_private_networks": True}
# Backoff without jitter or wait where the server gave no hint (the connection tests).
FAST = RetryPolicy(backoff_s=0.01, backoff_max_s=0.01, jitter=lambda high: high)


def tiers_file(tmp_path: Path, **tiny: Any) -> Path:
    """A tiers file: the default tiers plus `tiny`, with the given limits."""
    tiers = {
        name: {k: v for k, v in tier.model_dump().items() if k != "name"}
        for name, tier in DEFAULT_TIERS.items()
    }
    tiers["tiny"] = {**tiers["pro"], **tiny}
    path = tmp_path / "tiers.json"
    path.write_text(json.dumps({"tiers": tiers}))
    return path


@pytest.fixture
def harness_overrides() -> dict[str, Any]:
    """Settings of this module's gateway, besides `OVERRIDES`."""
    return {}


@pytest.fixture
async def h(settings: Settings, harness_overrides: dict[str, Any]) -> AsyncIterator[JobsHarness]:
    """One gateway's public and worker apps on the test's backends."""
    async with jobs_harness(settings, **{**OVERRIDES, **harness_overrides}) as harness:
        yield harness


@pytest.fixture
async def base_url(h: JobsHarness) -> AsyncIterator[str]:
    """The gateway's public port, served by a real uvicorn server."""
    async with served(h.public_app) as url:
        yield url


@pytest.fixture
async def key(h: JobsHarness) -> str:
    """An API key of user alice (tier pro)."""
    return await h.key()


@pytest.fixture
def retries() -> list[Retry]:
    """Every retry the `gw` client announced."""
    return []


@pytest.fixture
async def gw(base_url: str, key: str, retries: list[Retry]) -> AsyncIterator[AsyncClient]:
    """An async SDK client of the served gateway, with alice's key."""
    async with AsyncClient(base_url, api_key=key, on_retry=retries.append) as client:
        yield client


async def in_thread(work: Callable[[], T]) -> T:
    """Run blocking SDK code off the event loop the gateway is served on."""
    return await asyncio.to_thread(work)
