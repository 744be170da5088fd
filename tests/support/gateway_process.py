"""Start the real `gateway serve` as a subprocess on free ports, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.core.settings import Settings
from tests.support.ports import free_port
from tests.support.wait import wait_until_sync


@dataclass
class GatewayProcess:
    """A running gateway with its three ports and captured output."""

    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def url(self, audience: str, path: str) -> str:
        """Full URL of `path` on one audience's port."""
        return f"http://127.0.0.1:{self.ports[audience]}{path}"

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until `/ready` answers 200 on every port, or fail with the log.

        The deadline only ends a failing test: a gateway subprocess under coverage on a
        busy machine (its own embedded servers too, in embedded mode) took more than the
        30 s this used to allow, and each probe may take seconds to answer.
        """
        pending = set(self.ports)
        last: dict[str, str] = {}

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"gateway exited with {self.proc.returncode}:\n{self.output()}"
                )
            for audience in list(pending):
                try:
                    response = httpx.get(self.url(audience, "/ready"), timeout=10)
                except httpx.HTTPError as exc:
                    last[audience] = repr(exc)
                    continue
                last[audience] = f"{response.status_code} {response.text[:300]}"
                if response.status_code == 200:
                    pending.discard(audience)
            return not pending

        try:
            wait_until_sync(ready, within_s=timeout, what="/ready answering 200 on every port")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last answers {last}:\n{self.output()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send a signal and wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace")


def backend_env(settings: Settings) -> dict[str, str]:
    """Environment naming the test's Redis, PostgreSQL and key prefix."""
    assert settings.redis_url is not None
    assert settings.database_url is not None
    return {
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": settings.database_url,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
    }


def replica_env(settings: Settings) -> dict[str, str]:
    """Environment of a replica on the test's backends, with 5 s leases and a fast reaper."""
    return {
        **backend_env(settings),
        "RUN_MIGRATIONS": "false",
        "LEASE_TIMEOUT_S": "5",  # long enough for a loaded machine to post its results
        "REAPER_INTERVAL_S": "0.1",
        "RETRY_BACKOFF_BASE_S": "0",
        "RETRY_BACKOFF_CAP_S": "0",
        "LOG_LEVEL": "warning",
    }


def start_gateway(log_dir: Path, env: dict[str, str], *, cwd: Path | None = None) -> GatewayProcess:
    """Start `python -m gateway serve` with the given environment on free ports."""
    ports = {"public": free_port(), "parcel": free_port(), "party": free_port()}
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}},
        "PUBLIC_PORT": str(ports["public"]),
        "PARCEL_INTERNAL_PORT": str(ports["parcel"]),
        "PARTY_INTERNAL_PORT": str(ports["party"]),
        "GATEWAY_HOST": "127.0.0.1",
        "ENVIRONMENT": "test",
        "LOG_FORMAT": "json",
        "GRACEFUL_TIMEOUT_S": "5",
        **env,
    }
    log_path = log_dir / f"gateway-{ports['public']}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd or log_dir,
        )
    return GatewayProcess(proc, ports, log_path, full_env)


def run_gateway(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run a short-lived `gateway` command and capture its output."""
    full_env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}},
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
