"""Start the servers under test as child processes and stop them with a signal.

Each server runs in its own session, so a Ctrl-C in the terminal reaches only the
benchmark, which then stops the servers itself: SIGTERM first (the way an orchestrator
stops the gateway), SIGKILL to the whole process group only after a grace period.
Output goes to a log file per server, printed when a server fails to come up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerError(RuntimeError):
    """A server under test exited early or never became ready."""


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports that were free a moment ago (bound together, then released)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Server:
    """One server process under test."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    base_url: str
    ready_path: str
    log_path: Path
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    _log: IO[bytes] | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        """Process id; the server must have been started."""
        if self.process is None:
            raise ServerError(f"{self.name} is not running")
        return self.process.pid

    def start(self) -> None:
        """Spawn the process in its own session with output to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            list(self.argv),
            env=dict(self.env),
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout_s: float) -> None:
        """Poll the readiness path until it answers 200, or fail with the server's log."""
        url = self.base_url + self.ready_path
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise ServerError(
                        f"{self.name} exited with {self.process.returncode} before it was "
                        f"ready\n{self.log_tail()}"
                    )
                try:
                    response = client.get(url)
                except httpx.TransportError as exc:
                    last = type(exc).__name__
                else:
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                time.sleep(0.2)
        raise ServerError(f"{self.name} not ready after {timeout_s:g}s ({last})\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process (all its threads) so far."""
        user, system = self.cpu_times()
        return user + system

    def cpu_times(self) -> tuple[float, float]:
        """User and system (kernel) CPU time of the process so far."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            # Field 2 (comm) may contain spaces; everything after its closing ")" is fixed.
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS

    def stop(self, grace_s: float) -> int | None:
        """SIGTERM, wait up to `grace_s`, then SIGKILL the group; return the exit code."""
        process = self.process
        if process is None:
            return None
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    # The leader is not reaped yet, so its group id still names our group.
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
            return process.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server wrote, for error messages."""
        if self._log is not None:
            self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        tail = text.splitlines()[-lines:]
        return "\n".join(f"  {self.name}| {line}" for line in tail)
