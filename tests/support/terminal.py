"""Run a `gateway` subprocess with a pseudo-terminal as its stdout and stderr, as a
person at a terminal would, and read what it writes."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TerminalProcess:
    """A process whose stdout and stderr are one pseudo-terminal."""

    proc: subprocess.Popen[bytes]
    master: int
    text: bytearray = field(default_factory=bytearray)

    def read_until(self, needle: str, *, within_s: float = 120.0) -> str:
        """Everything written so far once `needle` appeared (fails with the output)."""
        deadline = time.monotonic() + within_s
        while needle.encode() not in self.text:
            if time.monotonic() > deadline or not self._read(deadline - time.monotonic()):
                raise AssertionError(f"{needle!r} never appeared:\n{self.output()}")
        return self.output()

    def wait(self, *, within_s: float = 60.0) -> int:
        """Read until the process exits and closes the terminal; its exit code."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline and self._read(deadline - time.monotonic()):
            pass
        code = self.proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        os.close(self.master)
        return code

    def output(self) -> str:
        """What the process wrote, with the terminal's CRLF line ends made LF."""
        return self.text.decode(errors="replace").replace("\r\n", "\n")

    def _read(self, timeout: float) -> bool:
        # False once the other end is closed (the process exited) or time ran out.
        ready, _, _ = select.select([self.master], [], [], max(0.0, min(timeout, 1.0)))
        if not ready:
            return self.proc.poll() is None and timeout > 0
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            return False
        self.text += chunk
        return bool(chunk)


def start_in_terminal(args: list[str], env: dict[str, str], cwd: Path) -> TerminalProcess:
    """Start `python -m gateway ARGS` attached to a new pseudo-terminal."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
        )
    finally:
        os.close(slave)
    return TerminalProcess(proc, master)
