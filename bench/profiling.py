"""py-spy attached to a server under test, for the benchmarks' `--profile` options."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


def start_py_spy(pid: int, out: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """Sample `pid` without pausing it (`--nonblocking`: pausing would slow the server
    enough to trip its Redis timeouts) into collapsed stacks at `out`."""
    beside = Path(sys.executable).parent / "py-spy"
    return subprocess.Popen(
        [
            str(beside) if beside.exists() else "py-spy",
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--output",
            str(out),
            "--rate",
            str(rate),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_py_spy(profiler: subprocess.Popen[bytes]) -> None:
    """Stop py-spy; SIGINT makes it write its output."""
    profiler.send_signal(signal.SIGINT)
    profiler.wait(timeout=60)
