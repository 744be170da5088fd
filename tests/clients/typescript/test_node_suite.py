"""The TypeScript SDK's own tests (`node --test clients/typescript/test/*.test.js`) against a real
gateway: the harness's public and parcel apps on real uvicorn servers, real Redis and
PostgreSQL. The Node tests get the URLs, an API key and a worker token in their
environment and act as the worker themselves, so a followed job really completes."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.core.settings import Settings
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.streams import served
from tests.support.typescript_sdk import SDK, node

pytestmark = pytest.mark.integration

# A reconnecting follower waits for the stream's `retry:` hint: the smallest allowed.
OVERRIDES: dict[str, Any] = {"sse_retry_ms": 100}


@pytest.fixture
async def h(settings: Settings) -> AsyncIterator[JobsHarness]:
    """One gateway's apps on the test's backends."""
    async with jobs_harness(settings, **OVERRIDES) as harness:
        yield harness


async def test_the_node_suite_passes_against_a_real_gateway(h: JobsHarness) -> None:
    node_path = node()  # installs the SDK's npm packages first
    # Files, not the directory: Node 20 searches a directory, Node 22 reads globs.
    tests = sorted(str(path.relative_to(SDK)) for path in (SDK / "test").glob("*.test.js"))
    assert tests
    async with served(h.public_app) as public_url, served(h.parcel_app) as parcel_url:
        env = {
            **os.environ,
            "GATEWAY_URL": public_url,
            "GATEWAY_API_KEY": await h.key(),
            "GATEWAY_PARCEL_URL": parcel_url,
            "GATEWAY_WORKER_TOKEN": await h.worker_token(),
            "NODE_OPTIONS": "",
        }
        # Async: the gateway is served on this very event loop while node runs.
        process = await asyncio.create_subprocess_exec(
            node_path,
            "--test",
            "--test-reporter=tap",
            *tests,
            cwd=SDK,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=300)
    report = output.decode(errors="replace")
    assert process.returncode == 0, report
    assert "# fail 0" in report, report
    assert "# SKIP" not in report, report  # the gateway tests really ran
    assert "ok 2 - follows a job over SSE from its snapshot to its terminal event" in report, report
