"""Where a running gateway's embedded servers listen, for commands run beside it.

The gateway that owns a data dir (it holds `embedded.lock`) writes `embedded.json` with
its pid and both URLs once the servers answer, and removes it before it lets the lock go.
An operator command (`gateway keys create`, `gateway migrate`, ...) run in the same
`DATA_DIR` meanwhile cannot start servers of its own there; it reads the file and uses the
running ones. The lock, not the file, says whether an owner is alive: a file left by a
killed gateway names a pid that no longer holds the lock, and is ignored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
from dataclasses import dataclass

from gateway.embedded.errors import EmbeddedBackendError

STATE_FILE = "embedded.json"
LOCK_FILE = "embedded.lock"


@dataclass(frozen=True)
class RunningBackends:
    """The embedded servers of the gateway that owns a data dir."""

    pid: int
    redis_url: str
    database_url: str


def write_state(data_dir: pathlib.Path, redis_url: str, database_url: str) -> None:
    """Publish this process's embedded URLs (atomically: readers never see half a file)."""
    path = data_dir / STATE_FILE
    staging = path.with_suffix(".json.tmp")
    body = {"pid": os.getpid(), "redis_url": redis_url, "database_url": database_url}
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(body, out)
    staging.replace(path)


def remove_state(data_dir: pathlib.Path) -> None:
    """Withdraw the published URLs (before the servers stop)."""
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def running_backends(data_dir: pathlib.Path) -> RunningBackends | None:
    """The live owner's servers; None when no process owns `data_dir`.

    Raises `EmbeddedBackendError` when an owner is alive but has not published its URLs
    yet (it is still starting) or published them under another pid (an older file).
    """
    lock_path = data_dir / LOCK_FILE
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EmbeddedBackendError(f"cannot read {lock_path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip()
        else:
            return None  # nobody holds it: the caller may start servers itself
    finally:
        os.close(fd)  # also drops the shared lock, if we took it
    state = _read(data_dir / STATE_FILE)
    if state is None or str(state.pid) != owner:
        raise EmbeddedBackendError(
            f"{data_dir} is in use by gateway pid {owner or 'unknown'}, which is still "
            "starting: try again once it prints 'gateway ready'"
        )
    return state


def _read(path: pathlib.Path) -> RunningBackends | None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        body = json.loads(path.read_text())
        return RunningBackends(int(body["pid"]), str(body["redis_url"]), str(body["database_url"]))
    return None
