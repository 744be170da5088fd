"""Run `wrk` and read its report.

Only the human-readable report is parsed (no Lua script), so any packaged `wrk` 4.x
works. `--latency` adds the percentile table this module reads p50 and p99 from; wrk
records every request in an HdrHistogram, so those are not sampled estimates.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"

_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in " + _DURATION, re.MULTILINE)
_PERCENTILE = re.compile(r"^\s+(50|75|90|99)%\s+" + _DURATION, re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed a report this module cannot read."""


@dataclass(frozen=True)
class WrkParams:
    """Load shape shared by every run, so targets are measured identically."""

    threads: int
    connections: int
    duration_s: float
    timeout_s: float = 5.0

    def argv(self, url: str, duration_s: float | None = None) -> list[str]:
        """The wrk command line for one run against `url`."""
        seconds = self.duration_s if duration_s is None else duration_s
        return [
            "wrk",
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{seconds:g}s",
            f"--timeout={self.timeout_s:g}s",
            "--latency",
            url,
        ]


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    elapsed_s: float
    requests_per_s: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        """Responses that were not 2xx/3xx plus connect/read/write/timeout errors."""
        return self.non_2xx + self.socket_errors


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def parse(report: str) -> WrkResult:
    """Read one `wrk --latency` report."""
    rps = _RPS.search(report)
    total = _TOTAL.search(report)
    percentiles = {m.group(1): _to_ms(m.group(2), m.group(3)) for m in _PERCENTILE.finditer(report)}
    if rps is None or total is None or set(percentiles) != {"50", "75", "90", "99"}:
        raise WrkError(f"unexpected wrk output:\n{report}")
    non_2xx = _NON_2XX.search(report)
    socket = _SOCKET.search(report)
    return WrkResult(
        requests=int(total.group(1)),
        elapsed_s=_to_ms(total.group(2), total.group(3)) / 1e3,
        requests_per_s=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p75_ms=percentiles["75"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
    )


def require_wrk() -> str:
    """Path of the wrk binary, or a clear error naming the package to install."""
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk not found: install it (Debian/Ubuntu: apt-get install -y wrk)")
    return path


def run(params: WrkParams, url: str, duration_s: float | None = None) -> WrkResult:
    """Load `url` once and return the parsed report."""
    seconds = params.duration_s if duration_s is None else duration_s
    completed = subprocess.run(
        params.argv(url, duration_s),
        capture_output=True,
        text=True,
        timeout=seconds + params.timeout_s + 30,
        check=False,
    )
    if completed.returncode != 0:
        raise WrkError(f"wrk exited {completed.returncode}:\n{completed.stderr}")
    return parse(completed.stdout)
