"""Fixtures of the live-stream tests: one gateway's apps and its public port served.

A module that needs other settings overrides `harness_overrides`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.core.settings import Settings
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.streams import served


@pytest.fixture
def harness_overrides() -> dict[str, Any]:
    """Settings of this module's harness, besides the test's own."""
    return {}


@pytest.fixture
async def h(settings: Settings, harness_overrides: dict[str, Any]) -> AsyncIterator[JobsHarness]:
    """The public and worker apps of one gateway on the test's backends."""
    async with jobs_harness(settings, **harness_overrides) as harness:
        yield harness


@pytest.fixture
async def web(h: JobsHarness) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the harness's public app on a real HTTP server."""
    async with served(h.public_app) as base, httpx.AsyncClient(base_url=base, timeout=30) as c:
        yield c
