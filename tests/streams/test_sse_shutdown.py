"""A real `gateway serve` stopping (SIGTERM) says goodbye on every open SSE stream: an
`event: shutdown` with a `retry:` hint and no id, then the stream ends and the process
exits cleanly instead of waiting out its graceful timeout on streams that never end."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from tests.support.gateway_process import replica_env, start_gateway
from tests.support.jobs import PLATFORMS, JobsHarness
from tests.support.streams import open_sse

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RETRY_MS = 1500
EXIT_WAIT_S = 60


async def test_sigterm_ends_open_streams_with_a_shutdown_event(
    h: JobsHarness, settings: Settings, tmp_path: Path
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["bye-1"])).json()
    env = {
        **replica_env(settings),
        "JOB_PLATFORMS": json.dumps(PLATFORMS),
        "SSE_RETRY_MS": str(RETRY_MS),
    }
    gateway = start_gateway(tmp_path, env)
    try:
        await asyncio.to_thread(gateway.wait_ready)
        async with (
            httpx.AsyncClient(base_url=gateway.url("public", ""), timeout=30) as web,
            open_sse(web, f"/v1/jobs/{job['id']}/events", headers={"X-API-Key": key}) as sse,
        ):
            assert sse.response.status_code == 200
            events = sse.events()
            snapshot = await anext(events)
            assert snapshot.event == "snapshot"
            gateway.proc.send_signal(signal.SIGTERM)
            rest = [e async for e in events]  # ends: the server closed the stream
        assert [e.event for e in rest] == ["shutdown"]
        assert rest[0].id is None  # the client resumes from its last real event
        assert rest[0].json()["reason"] == "shutdown"
        assert sse.last_id == snapshot.id
        assert sse.retry == [RETRY_MS, RETRY_MS]  # at the start, and with the goodbye
        # One signal only: a second SIGTERM would force the shutdown. The timeout bounds
        # a failing test (the drain is GRACEFUL_TIMEOUT_S = 5 s); it is not under test.
        code = await asyncio.to_thread(gateway.proc.wait, EXIT_WAIT_S)
    finally:
        await asyncio.to_thread(gateway.stop)  # no signal once it exited
    output = gateway.output()
    assert code == 0, output
    assert "forced_shutdown" not in output
    assert "Traceback" not in output, output
