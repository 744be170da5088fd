"""Operator commands while an embedded gateway runs in the same `DATA_DIR`: they use its
PostgreSQL and Redis, print for scripts on stdout alone, and a second `serve` there is
refused in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.gateway_process import GatewayProcess, run_gateway, start_gateway
from tests.support.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def embedded_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
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


REPO_ROOT = Path(__file__).resolve().parents[2]


def _readme_line(prefix: str) -> str:
    """The README's command starting with `prefix`, without its trailing comment."""
    readme = (REPO_ROOT / "README.md").read_text()
    (line,) = [line for line in readme.splitlines() if line.startswith(prefix)]
    return line.split("  #")[0].strip()


def _run_as_written(line: str, variable: str, env: dict[str, str], cwd: Path) -> str:
    """Run one README line in bash (`gateway` being this checkout's) and return `variable`."""
    script = (
        f'gateway() {{ "{sys.executable}" -m gateway "$@"; }}\n{line}\nprintf %s "${variable}"\n'
    )
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}},
        **env,
        "PYTHONPATH": str(REPO_ROOT),
    }
    done = subprocess.run(
        ["bash", "-c", script],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_the_readme_commands_capture_what_they_say(
    tmp_path: Path, embedded_gateway: GatewayProcess
) -> None:
    gw = embedded_gateway
    env = _cli_env(tmp_path)
    key = _run_as_written(_readme_line("KEY=$(gateway keys create"), "KEY", env, tmp_path)
    me = httpx.get(gw.url("public", "/v1/me"), headers={"X-API-Key": key}, timeout=10)
    assert me.status_code == 200, me.text

    # The Protocol section enqueues with the producer token it creates.
    producer = _run_as_written(_readme_line("PT=$(gateway tokens create"), "PT", env, tmp_path)
    enqueued = httpx.post(
        gw.url("parcel", "/internal/tasks"),
        headers={"X-Worker-Token": producer},
        json={"tasks": [{"platform": "miami_dade", "key": "01-2345-678", "payload": {}}]},
        timeout=10,
    )
    assert enqueued.status_code == 200, enqueued.text
    worker = _run_as_written(_readme_line("T=$(gateway tokens create"), "T", env, tmp_path)
    leased = httpx.get(
        gw.url("parcel", "/internal/work"),
        params={"worker_id": "w-17", "platforms": "miami_dade", "limit": 1, "wait": 0},
        headers={"X-Worker-Token": worker},
        timeout=10,
    )
    assert leased.status_code == 200, leased.text
    assert [t["key"] for t in leased.json()["tasks"]] == ["01-2345-678"]
