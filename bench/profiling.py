"""py-spy attached to a server under test, for the benchmarks' `--profile` options."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


def start_py_spy(pid: int, out: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """Sample `pid` into collapsed stacks at `out`.

    py-spy pauses the process for each sample (a few µs at 200 Hz, far below any Redis
    timeout): `--nonblocking` reads the stacks while the process runs, and under uvloop
    that attributed time to lines that merely happened to be on the stack."""
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
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_py_spy(profiler: subprocess.Popen[bytes]) -> None:
    """Stop py-spy; SIGINT makes it write its output."""
    profiler.send_signal(signal.SIGINT)
    profiler.wait(timeout=60)
