"""The real Firebase Auth emulator (firebase-tools), installed and started for tests.

`scripts/ensure_firebase_emulator.sh` installs firebase-tools into `.cache/firebase-tools`
(once; later runs reuse it). The auth emulator runs offline on Node, no Java needed.
Under CI=true a missing emulator fails the run; elsewhere tests are skipped only when npm
itself is missing.

Under pytest-xdist every worker that runs an emulator test starts its own emulator (free
ports, its own working directory, so no state is shared); the install step is serialised
with a file lock, since two concurrent `npm install`s into one prefix corrupt it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "demo-gateway"
PASSWORD = "emulator-only-password"
_START_TIMEOUT_S = 90


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"CI=true but the Firebase Auth emulator is unavailable: {reason}")
    pytest.skip(f"Firebase Auth emulator unavailable: {reason}")


def firebase_binary() -> str:
    """Install (or reuse) firebase-tools and return its binary."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        _unavailable("node/npm are not installed")
    lock_path = Path(tempfile.gettempdir()) / "gwtest-firebase-tools.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "ensure_firebase_emulator.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    if result.returncode != 0:
        pytest.fail(f"installing firebase-tools failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


@dataclass
class AuthEmulator:
    """A running auth emulator and a small REST client for it."""

    host: str  # host:port, the value of FIREBASE_AUTH_EMULATOR_HOST
    project: str = PROJECT

    def _url(self, path: str) -> str:
        return f"http://{self.host}/identitytoolkit.googleapis.com/v1/{path}"

    def sign_up(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        """Create a user; returns idToken and localId."""
        response = httpx.post(
            self._url("accounts:signUp?key=fake-api-key"),
            json={"email": email, "password": password, "returnSecureToken": True},
            timeout=10,
        )
        response.raise_for_status()
        return dict(response.json())

    def sign_in(self, email: str, password: str = PASSWORD) -> str:
        """A fresh ID token for the user (carries current custom claims)."""
        response = httpx.post(
            self._url("accounts:signInWithPassword?key=fake-api-key"),
            json={"email": email, "password": password, "returnSecureToken": True},
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["idToken"])

    def update(self, uid: str, **fields: Any) -> None:
        """Admin update (custom claims, disable, validSince) with the emulator's owner token."""
        response = httpx.post(
            self._url(f"projects/{self.project}/accounts:update"),
            json={"localId": uid, **fields},
            headers={"Authorization": "Bearer owner"},
            timeout=10,
        )
        response.raise_for_status()

    def set_claims(self, uid: str, claims: dict[str, Any]) -> None:
        """Set custom claims."""
        self.update(uid, customAttributes=json.dumps(claims))


def _wait_ready(proc: subprocess.Popen[bytes], host: str, log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _unavailable(f"emulator exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://{host}/", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    _unavailable(f"emulator not ready after {_START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


def run_emulator(workdir: Path) -> Iterator[AuthEmulator]:
    """Start `firebase emulators:start --only auth` on free ports; stop it afterwards."""
    binary = firebase_binary()
    port, hub, logging_port = free_port(), free_port(), free_port()
    config = {
        "emulators": {
            "auth": {"host": "127.0.0.1", "port": port},
            "hub": {"host": "127.0.0.1", "port": hub},
            "logging": {"host": "127.0.0.1", "port": logging_port},
            "ui": {"enabled": False},
            "singleProjectMode": True,
        }
    }
    (workdir / "firebase.json").write_text(json.dumps(config))
    log = workdir / "emulator.log"
    env = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "FIREBASE_CLI_EXPERIMENTS": ""}
    env.pop("FIREBASE_AUTH_EMULATOR_HOST", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                "emulators:start",
                "--only",
                "auth",
                "--project",
                PROJECT,
                "--config",
                str(workdir / "firebase.json"),
            ],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    host = f"127.0.0.1:{port}"
    try:
        _wait_ready(proc, host, log)
        yield AuthEmulator(host)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
