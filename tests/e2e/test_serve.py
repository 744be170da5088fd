"""The real `gateway serve` process: three ports, isolation, metrics, clean shutdown."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.backends import TestBackends
from tests.support.gateway_process import GatewayProcess, run_gateway, start_gateway
from tests.support.ports import free_port, port_open
from tests.support.raw_http import RawRequest
from tests.support.wait import wait_until_sync

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _gauge(text: str, name: str, audience: str, generation: str | None = None) -> float:
    labels = f'audience="{audience}"' + (f',generation="{generation}"' if generation else "")
    prefix = f"{name}{{{labels}}} "
    line = next(line for line in text.splitlines() if line.startswith(prefix))
    return float(line.removeprefix(prefix))


def _check_audiences(gw: GatewayProcess) -> None:
    for audience in ("public", "parcel", "party"):
        assert httpx.get(gw.url(audience, "/health")).json() == {"status": "ok"}
        metrics = httpx.get(gw.url(audience, "/metrics"))
        assert metrics.status_code == 200
        assert f'audience="{audience}"' in metrics.text
        assert "gateway_build_info" in metrics.text
        assert _gauge(metrics.text, "gateway_gc_frozen_objects", audience) > 10_000
        # The start-up collection before the freeze was a full one, and was measured.
        assert _gauge(metrics.text, "gateway_gc_pause_seconds_count", audience, "2") >= 1
    assert httpx.get(gw.url("public", "/v1/info")).json()["audience"] == "public"
    assert httpx.get(gw.url("public", "/internal/info")).status_code == 404
    for audience in ("parcel", "party"):
        assert httpx.get(gw.url(audience, "/internal/info")).json()["audience"] == audience
        assert httpx.get(gw.url(audience, "/v1/info")).status_code == 404


def _assert_clean_stop(gw: GatewayProcess) -> None:
    code = gw.stop(signal.SIGTERM)
    assert code == 0, gw.output()
    assert not any(port_open(p) for p in gw.ports.values())
    assert "Traceback" not in gw.output()


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def real_env(backends: TestBackends, database_url: str, redis_prefix: str) -> dict[str, str]:
    return {
        "REDIS_URL": backends.redis_url,
        "DATABASE_URL": database_url,
        "REDIS_KEY_PREFIX": redis_prefix,
    }


def test_serve_on_real_backends(tmp_path: Path, real_env: dict[str, str]) -> None:
    gw = start_gateway(tmp_path, real_env)
    try:
        gw.wait_ready()
        _check_audiences(gw)
        httpx.get(gw.url("public", "/v1/info"), headers={"X-Request-ID": "e2e-trace-1"})
    finally:
        _assert_clean_stop(gw)
    lines = _json_lines(gw.output())
    traced = [line for line in lines if line.get("request_id") == "e2e-trace-1"]
    assert traced
    assert traced[0]["route"] == "/v1/info"
    assert any(line["event"] == "stopped" for line in lines)


@pytest.fixture
def blackhole() -> Iterator[socket.socket]:
    """A listener whose connections wait in its backlog, never answered, until it closes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener


@pytest.fixture
def hanging_redis_env(real_env: dict[str, str], blackhole: socket.socket) -> dict[str, str]:
    """Redis "reachable" on a socket that accepts and never answers: /ready hangs."""
    return {**real_env, "REDIS_URL": f"redis://127.0.0.1:{blackhole.getsockname()[1]}/0"}


def _stop_started(gw: GatewayProcess) -> bool:
    """SIGTERM was handled: the listeners are closed and the runner said so."""
    return not port_open(gw.ports["public"]) and '"shutdown_requested"' in gw.output()


def _wait_health(gw: GatewayProcess) -> None:
    def healthy() -> bool:
        assert gw.proc.poll() is None, gw.output()
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(gw.url("public", "/health"), timeout=10).status_code == 200
        return False

    wait_until_sync(healthy, within_s=120, what="/health answering 200")


def test_in_flight_request_finishes_during_graceful_shutdown(
    tmp_path: Path, hanging_redis_env: dict[str, str], blackhole: socket.socket
) -> None:
    """A request that is mid-way when SIGTERM arrives still gets its answer."""
    # The /ready request hangs on Redis until the test closes the blackhole: no timeout
    # (READY_TIMEOUT_S, GRACEFUL_TIMEOUT_S) can end it first, however slow the machine.
    gw = start_gateway(
        tmp_path, {**hanging_redis_env, "READY_TIMEOUT_S": "30", "GRACEFUL_TIMEOUT_S": "60"}
    )
    _wait_health(gw)
    in_flight = RawRequest(gw.ports["public"], "/ready")
    try:
        in_flight.wait_read_by_server()
        gw.proc.send_signal(signal.SIGTERM)
        # New connections are refused...
        wait_until_sync(lambda: _stop_started(gw), what="the listeners closing on SIGTERM")
        assert gw.proc.poll() is None, "a graceful stop waits for the open request"
        # ...while the request in flight completes (503: its Redis connection was reset).
        blackhole.close()
        assert in_flight.status() == 503
    finally:
        in_flight.close()
    assert gw.proc.wait(timeout=60) == 0


def test_second_signal_forces_exit(tmp_path: Path, hanging_redis_env: dict[str, str]) -> None:
    gw = start_gateway(
        tmp_path, {**hanging_redis_env, "READY_TIMEOUT_S": "30", "GRACEFUL_TIMEOUT_S": "60"}
    )
    _wait_health(gw)
    in_flight = RawRequest(gw.ports["public"], "/ready")
    try:
        in_flight.wait_read_by_server()
        gw.proc.send_signal(signal.SIGTERM)
        wait_until_sync(lambda: _stop_started(gw), what="the listeners closing on SIGTERM")
        assert gw.proc.poll() is None, "a graceful stop waits for the open request"
        gw.proc.send_signal(signal.SIGINT)
        # No duration is asserted: a graceful stop would also end (once /ready times
        # out), but only a forced one logs forced_shutdown.
        gw.proc.wait(timeout=60)
    finally:
        in_flight.close()
    assert any(line["event"] == "forced_shutdown" for line in _json_lines(gw.output()))


def test_port_in_use_fails_before_serving(tmp_path: Path, real_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        public = free_port()
        result = run_gateway(
            ["serve"],
            {
                **real_env,
                "PUBLIC_PORT": str(public),
                "PARCEL_INTERNAL_PORT": str(free_port()),
                "PARTY_INTERNAL_PORT": str(port),
            },
            tmp_path,
        )
    assert result.returncode == 1
    error_lines = result.stderr.strip().splitlines()
    assert error_lines == [
        f"gateway: cannot bind party port 127.0.0.1:{port}: Address already in use"
    ]
    assert not port_open(public)


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"PUBLIC_PORT": "eighty"}, "PUBLIC_PORT"),
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT"),
        ({"REDIS_URL": "redis//broken", "DATABASE_URL": "postgresql://h/db"}, "REDIS_URL"),
        ({"ENVIRONMENT": "production"}, "ENVIRONMENT"),
    ],
)
def test_invalid_configuration_exits_2_naming_the_setting(
    tmp_path: Path, env: dict[str, str], setting: str
) -> None:
    result = run_gateway(["serve"], env, tmp_path)
    assert result.returncode == 2
    assert setting in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_migrate_command(tmp_path: Path, real_env: dict[str, str]) -> None:
    result = run_gateway(["migrate"], real_env, tmp_path)
    assert result.returncode == 0, result.stderr


def test_serve_in_embedded_mode(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    gw = start_gateway(tmp_path, {"DATA_DIR": str(data_dir), "ENVIRONMENT": "development"})
    try:
        gw.wait_ready()
        _check_audiences(gw)
    finally:
        _assert_clean_stop(gw)
    lines = _json_lines(gw.output())
    assert any(line["event"] == "embedded_mode" for line in lines)
    assert (data_dir / "postgres").exists()
