"""The README's local Firebase recipe, as written: `examples/firebase_emulator.sh`, a
gateway trusting it, `examples/firebase_id_token.py`, then the Firebase curl examples
(`/v1/me`, `POST /v1/api-keys`) answered for that user."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from tests.support.firebase_emulator import firebase_binary
from tests.support.gateway_process import GatewayProcess, backend_env, start_gateway
from tests.support.ports import free_port
from tests.support.wait import wait_until_sync

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[str]:
    firebase_binary()  # installs firebase-tools once; skips (fails under CI) without npm
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(tmp_path / "var"),
        "FIREBASE_AUTH_PORT": str(port),
        "FIREBASE_HUB_PORT": str(free_port()),
        "FIREBASE_LOGGING_PORT": str(free_port()),
    }
    log = (tmp_path / "emulator.log").open("wb")
    proc = subprocess.Popen(
        ["bash", str(ROOT / "examples" / "firebase_emulator.sh")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # node and its children: one group to stop
    )

    def up() -> bool:
        assert proc.poll() is None, (tmp_path / "emulator.log").read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until_sync(up, within_s=120, what="the auth emulator answering")
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()


@pytest.fixture
def gateway(tmp_path: Path, settings: Settings, emulator: str) -> Iterator[GatewayProcess]:
    gw = start_gateway(
        tmp_path,
        {
            **backend_env(settings),
            "ENVIRONMENT": "development",
            "FIREBASE_PROJECT_ID": "demo-gateway",
            "FIREBASE_AUTH_EMULATOR_HOST": emulator,
        },
    )
    try:
        gw.wait_ready()
        yield gw
    finally:
        assert gw.stop() == 0, gw.output()


def _id_token(emulator: str, email: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "firebase_id_token.py"), email],
        env={**os.environ, "FIREBASE_AUTH_EMULATOR_HOST": emulator},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.removesuffix("\n")
    assert "\n" not in token
    return token


def test_the_firebase_examples_work_against_the_local_emulator(
    emulator: str, gateway: GatewayProcess
) -> None:
    token = _id_token(emulator, "me@example.com")
    bearer = {"Authorization": f"Bearer {token}"}
    me = httpx.get(gateway.url("public", "/v1/me"), headers=bearer, timeout=10)
    assert me.status_code == 200, me.text
    assert (me.json()["kind"], me.json()["email"]) == ("user", "me@example.com")

    # The second run signs the same user in.
    again = _id_token(emulator, "me@example.com")
    me_again = httpx.get(
        gateway.url("public", "/v1/me"), headers={"Authorization": f"Bearer {again}"}, timeout=10
    )
    assert me_again.json()["user_uid"] == me.json()["user_uid"]

    created = httpx.post(
        gateway.url("public", "/v1/api-keys"),
        headers=bearer,
        json={"name": "my script"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    as_key = httpx.get(
        gateway.url("public", "/v1/me"), headers={"X-API-Key": created.json()["key"]}, timeout=10
    )
    assert as_key.status_code == 200, as_key.text
    assert as_key.json()["user_uid"] == me.json()["user_uid"]
