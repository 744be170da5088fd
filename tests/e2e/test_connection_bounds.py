"""The real gateway applies the connection bounds its settings name, on every port."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from tests.support.gateway_process import GatewayProcess, start_gateway
from tests.support.wait import wait_until_sync

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def _gateway(tmp_path: Path, settings: Settings, **env: str) -> GatewayProcess:
    gateway = start_gateway(
        tmp_path,
        {
            "REDIS_URL": settings.redis_url or "",
            "DATABASE_URL": settings.database_url or "",
            "REDIS_KEY_PREFIX": settings.redis_key_prefix,
            **env,
        },
    )
    gateway.wait_ready()
    return gateway


def _closed_by_server(sock: socket.socket, wait_s: float = 30.0) -> bool:
    sock.settimeout(wait_s)
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65_536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return False


def _cuts(metrics: str, audience: str, reason: str) -> float:
    """`gateway_connections_cut_total` of one port and reason (exported at 0)."""
    series = f'gateway_connections_cut_total{{audience="{audience}",reason="{reason}"}} '
    for line in metrics.splitlines():
        if line.startswith(series):
            return float(line.removeprefix(series))
    raise AssertionError(f"no {series.strip()} in /metrics")


def test_connections_that_never_send_are_closed_on_every_port(
    tmp_path: Path, settings: Settings
) -> None:
    gateway = _gateway(tmp_path, settings, HTTP_HEAD_TIMEOUT_S="0.5")
    try:
        for audience, port in gateway.ports.items():
            with socket.create_connection(("127.0.0.1", port)) as sock:
                assert _closed_by_server(sock), gateway.output()
            # Counted on the port that cut it (at least this one: a probe may be cut too).
            metrics = httpx.get(gateway.url(audience, "/metrics"), timeout=30).text
            assert _cuts(metrics, audience, "head_timeout") >= 1, metrics
            assert _cuts(metrics, audience, "write_stalled") == 0
    finally:
        assert gateway.stop() == 0, gateway.output()


def test_a_connection_beyond_the_cap_gets_a_503_problem(tmp_path: Path, settings: Settings) -> None:
    gateway = _gateway(tmp_path, settings, MAX_CONNECTIONS_PER_PORT="1")
    try:
        with socket.create_connection(("127.0.0.1", gateway.ports["public"])):
            # The port's one connection is taken (accepted first: it connected first).
            answer = httpx.get(gateway.url("public", "/health"), timeout=30)
            assert answer.status_code == 503
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["status"] == 503
            # Other ports have their own cap.
            assert httpx.get(gateway.url("parcel", "/health"), timeout=30).status_code == 200
        # The held connection is gone: the port answers again, and counted the refusal.
        wait_until_sync(
            lambda: httpx.get(gateway.url("public", "/health"), timeout=30).status_code == 200,
            what="the public port to answer once its one connection closed",
        )
        metrics = httpx.get(gateway.url("public", "/metrics"), timeout=30).text
        assert _cuts(metrics, "public", "over_capacity") >= 1, metrics
    finally:
        assert gateway.stop() == 0, gateway.output()
    assert '"event": "connection_limit_reached"' in gateway.output()
