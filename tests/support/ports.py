"""Free loopback ports for tests that start real servers, safe across parallel processes.

A port from `bind(("127.0.0.1", 0))` is free only until the probe socket closes: until
the server meant for it binds, another xdist worker (or another run of the suite) can
be handed the same port, and the kernel can give it to an outgoing connection as its
source port. So `free_port` picks below the kernel's ephemeral range (never used as a
source port), checks that the port binds, and reserves it with an `flock` on a file in
a directory shared by every test process of this machine. The lock is held until the
process exits (the kernel drops it even after a crash), so no two live test processes
ever get the same port, and one process never gets a port twice.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path

_LOCK_DIR = Path(tempfile.gettempdir()) / "gwtest-ports"
_FLOOR = 10_000  # below: well-known and registered services
_reserved: dict[int, int] = {}  # port -> fd of its lock file, open for the process's life


def _ephemeral_low() -> int:
    try:
        low = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
    except (OSError, IndexError):
        return 32_768  # the Linux default
    return int(low)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _kernel_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _reserve(port: int) -> bool:
    _LOCK_DIR.mkdir(mode=0o777, exist_ok=True)
    fd = os.open(_LOCK_DIR / f"{port}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _reserved[port] = fd
    return True


def free_port() -> int:
    """A TCP port nobody listens on now, reserved for this process until it exits."""
    high = _ephemeral_low()
    for _ in range(1000):
        port = random.randrange(_FLOOR, high) if high - _FLOOR >= 1000 else _kernel_port()
        # Reserve first: a port that then fails to bind stays reserved (and skipped).
        if port not in _reserved and _reserve(port) and _bindable(port):
            return port
    raise RuntimeError(f"no free port below {high} after 1000 tries")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
