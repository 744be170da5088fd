"""Operator commands while an embedded gateway runs in the same `DATA_DIR`: they use its
PostgreSQL and Redis, print for scripts on stdout alone, and a second `serve` there is
refused in one line."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.gateway_process import GatewayProcess, run_gateway, start_gateway
from tests.support.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def embedded_gateway(tmp_path: Path) -> object:
    gw = start_gateway(tmp_path, {"DATA_DIR": str(tmp_path / "var")})
    try:
        gw.wait_ready()
        yield gw
    finally:
        assert gw.stop() == 0, gw.output()


def _cli_env(tmp_path: Path) -> dict[str, str]:
    # The same data dir (and no backend URLs: run_gateway drops them), as a person in
    # another terminal of the same checkout would have.
    return {"DATA_DIR": str(tmp_path / "var"), "ENVIRONMENT": "development"}


def test_commands_use_the_running_gateways_backends(
    tmp_path: Path, embedded_gateway: GatewayProcess
) -> None:
    gw = embedded_gateway
    env = _cli_env(tmp_path)
    created = run_gateway(["keys", "create", "--name", "me", "--tier", "free"], env, tmp_path)
    assert created.returncode == 0, created.stderr
    key = created.stdout.removesuffix("\n")
    assert key.startswith("tlk_")
    assert "\n" not in key
    assert "Traceback" not in created.stderr

    # The key was written to the gateway's own database: the gateway accepts it.
    me = httpx.get(gw.url("public", "/v1/me"), headers={"X-API-Key": key}, timeout=10)
    assert me.status_code == 200, me.text

    token = run_gateway(
        ["tokens", "create", "--audience", "parcel", "--name", "cli", "--role", "producer"],
        env,
        tmp_path,
    )
    assert token.returncode == 0, token.stderr
    enqueued = httpx.post(
        gw.url("parcel", "/internal/tasks"),
        headers={"X-Worker-Token": token.stdout.strip().splitlines()[-1]},
        json={"tasks": [{"platform": "miami_dade", "key": "01-0001", "payload": {}}]},
        timeout=10,
    )
    assert enqueued.status_code == 200, enqueued.text

    migrated = run_gateway(["migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout == ""

    listed = run_gateway(["keys", "list"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert key.split("_")[1] in listed.stdout


def test_a_second_serve_in_the_same_data_dir_is_one_line(
    tmp_path: Path, embedded_gateway: GatewayProcess
) -> None:
    env = {
        **_cli_env(tmp_path),
        "PUBLIC_PORT": str(free_port()),
        "PARCEL_INTERNAL_PORT": str(free_port()),
        "PARTY_INTERNAL_PORT": str(free_port()),
    }
    second = run_gateway(["serve"], env, tmp_path)
    assert second.returncode == 1
    pid = embedded_gateway.proc.pid
    assert second.stderr.strip().splitlines() == [
        f"gateway: {(tmp_path / 'var').resolve()} is in use by another gateway process "
        f"(pid {pid}): stop it, or set DATA_DIR to another directory"
    ]
