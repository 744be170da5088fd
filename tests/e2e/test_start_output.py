"""What `gateway serve` writes at start and stop: console lines at a development terminal,
JSON anywhere else, one ready block per process and none of uvicorn's per-server lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.backends import TestBackends
from tests.support.ports import free_port
from tests.support.terminal import start_in_terminal
from tests.support.wait import wait_until_sync

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

UVICORN_LINES = ("Started server process", "Uvicorn running on", "Application startup complete")
UVICORN_STOP_LINES = ("Shutting down", "Finished server process", "Application shutdown complete")


@pytest.fixture
def env(backends: TestBackends, database_url: str, redis_prefix: str) -> dict[str, str]:
    ports = {name: str(free_port()) for name in ("PUBLIC", "PARCEL_INTERNAL", "PARTY_INTERNAL")}
    return {
        **{
            k: v
            for k, v in os.environ.items()
            if k not in {"LOG_FORMAT", "ENVIRONMENT", "KUBERNETES_SERVICE_HOST", "container"}
        },
        **{f"{name}_PORT": port for name, port in ports.items()},
        "GATEWAY_HOST": "127.0.0.1",
        "ENVIRONMENT": "development",
        "REDIS_URL": backends.redis_url,
        "DATABASE_URL": database_url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "GRACEFUL_TIMEOUT_S": "5",
    }


def test_a_development_terminal_gets_console_lines_and_one_ready_block(
    tmp_path: Path, env: dict[str, str]
) -> None:
    gw = start_in_terminal(["serve"], env, tmp_path)
    try:
        started = gw.read_until("  next ")
    finally:
        gw.proc.send_signal(signal.SIGTERM)
    assert gw.wait() == 0, gw.output()
    out = gw.output()
    public = f"http://127.0.0.1:{env['PUBLIC_PORT']}"
    assert out.count("gateway ready") == 1
    assert f"  public API      {public}/v1\n" in started
    assert f"  parcel workers  http://127.0.0.1:{env['PARCEL_INTERNAL_PORT']}/internal\n" in out
    assert f"  party workers   http://127.0.0.1:{env['PARTY_INTERNAL_PORT']}/internal\n" in out
    assert f"{public}/docs" in out
    assert f'keys create --name me --tier free) && curl -H "X-API-Key: $KEY" {public}/v1/me' in out
    assert "  demo            " in out
    assert " demo   (sample parcels, demo credentials, a live job)\n" in out
    # Console lines, not JSON objects.
    assert "[info     ] listening" in out
    assert not [line for line in out.splitlines() if line.startswith("{")]
    for line in UVICORN_LINES + UVICORN_STOP_LINES:
        assert line not in out
    assert "stopped" in out
    assert "Traceback" not in out


def test_without_a_terminal_the_log_is_json_with_one_ready_event(
    tmp_path: Path, env: dict[str, str]
) -> None:
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_sync(
            lambda: '"event": "ready"' in log_path.read_text() or proc.poll() is not None,
            within_s=120,
            what="the ready event",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log_path.read_text()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    (ready,) = [line for line in lines if line["event"] == "ready"]
    assert ready["public"] == f"http://127.0.0.1:{env['PUBLIC_PORT']}"
    assert ready["parcel"] == f"http://127.0.0.1:{env['PARCEL_INTERNAL_PORT']}"
    assert f"{ready['public']}/docs" in ready["docs"]
    assert "keys create" in ready["next"]
    assert ready["demo"].split("   ")[0].endswith(" demo")
    messages = [str(line["event"]) for line in lines]
    for text in UVICORN_LINES + UVICORN_STOP_LINES:
        assert not [m for m in messages if m.startswith(text)]
    assert messages.count("stopped") == 1
