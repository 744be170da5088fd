"""Child processes of embedded mode: spawned in their own session with a parent-death
signal (and, as root, in a user namespace), waited for, and stopped when orphaned."""

from __future__ import annotations

import contextlib
import ctypes
import os
import pathlib
import pwd
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from gateway.embedded.errors import EmbeddedBackendError, missing_extra

logger = structlog.get_logger(__name__)

START_TIMEOUT_S = 60.0  # crash recovery after an unclean exit can take a while
STOP_TIMEOUT_S = 15.0
POLL_S = 0.02
_PR_SET_PDEATHSIG = 1
_CLONE_NEWUSER = 0x10000000


def _psutil() -> Any:
    try:
        import psutil
    except ImportError as exc:
        raise missing_extra("psutil") from exc
    return psutil


def stop_orphans(name: str, workdir: pathlib.Path, graceful: signal.Signals) -> None:
    """Stop servers left behind by a gateway that died without calling `stop()`."""
    psutil = _psutil()
    target = str(workdir)
    found = [
        proc
        for proc in psutil.process_iter(["name", "cwd", "ppid"])
        if proc.info["name"] == name and proc.info["cwd"] == target
    ]
    if not found:
        return
    pids = {proc.pid for proc in found}
    for proc in found:
        # Signal only the tree's root; PostgreSQL's own children follow their postmaster.
        if proc.info["ppid"] not in pids:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(graceful)
    alive = wait_exited(found, STOP_TIMEOUT_S)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    wait_exited(alive, 5.0)
    logger.warning("embedded_orphans_stopped", server=name, data_dir=str(workdir), count=len(found))


def wait_exited(procs: list[Any], timeout: float) -> list[Any]:
    """Wait for processes that are not our children; returns those still running."""
    psutil = _psutil()

    def running(proc: Any) -> bool:
        # An orphan's zombie only disappears when its new parent reaps it, and that
        # parent may be us (a gateway running as PID 1 in a container): count it as gone.
        try:
            return bool(proc.status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    deadline = time.monotonic() + timeout
    alive = [proc for proc in procs if running(proc)]
    while alive and time.monotonic() < deadline:
        time.sleep(POLL_S)
        alive = [proc for proc in alive if running(proc)]
    return alive


def child_setup(
    death_signal: signal.Signals | None, *, user_namespace: bool
) -> Callable[[], None] | None:
    """Code run in the child between fork and exec (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    set_death_signal = (
        death_signal is not None and threading.current_thread() is threading.main_thread()
    )
    if not set_death_signal and not user_namespace:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    try:
        nobody = pwd.getpwnam("nobody")
        inner_uid, inner_gid = nobody.pw_uid, nobody.pw_gid
    except KeyError:
        inner_uid = inner_gid = 65534
    # Built before fork: the child should allocate as little as possible.
    uid_map = f"{inner_uid} {os.geteuid()} 1".encode()
    gid_map = f"{inner_gid} {os.getegid()} 1".encode()
    signal_number = int(death_signal) if death_signal is not None else 0

    def write(path: str, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def setup() -> None:
        if user_namespace:
            if libc.unshare(_CLONE_NEWUSER) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWUSER) failed")
            write("/proc/self/setgroups", b"deny")
            write("/proc/self/uid_map", uid_map)
            write("/proc/self/gid_map", gid_map)
        if set_death_signal:
            if libc.prctl(_PR_SET_PDEATHSIG, signal_number, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
            if os.getppid() != parent:
                os._exit(1)  # the gateway died before the death signal was armed

    return setup


def run_tool(
    args: list[str], *, what: str, user_namespace: bool = False, stdin: bytes = b""
) -> bytes:
    """Run a PostgreSQL tool to completion; returns its output or raises with its error."""
    try:
        result = subprocess.run(  # noqa: S603 - our own binary and arguments, no shell
            args,
            input=stdin,
            capture_output=True,
            env=child_env(),
            preexec_fn=child_setup(None, user_namespace=user_namespace),
            timeout=START_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise spawn_error(pathlib.Path(args[0]).name, exc) from exc
    if result.returncode != 0:
        raise EmbeddedBackendError(
            f"{what} failed: {last_line(result.stderr.decode(errors='replace'))}"
        )
    return result.stdout


def spawn(
    args: list[str],
    *,
    log_path: pathlib.Path,
    death_signal: signal.Signals,
    user_namespace: bool,
) -> subprocess.Popen[bytes]:
    """Start a server in the foreground, its output appended to `log_path`."""
    try:
        with log_path.open("ab") as log:
            return subprocess.Popen(  # noqa: S603 - our own binary and arguments, no shell
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
                start_new_session=True,
                preexec_fn=child_setup(death_signal, user_namespace=user_namespace),
            )
    except (OSError, subprocess.SubprocessError) as exc:
        raise spawn_error(pathlib.Path(args[0]).name, exc) from exc


def spawn_error(program: str, exc: Exception) -> EmbeddedBackendError:
    """The operator's one-line reason a child could not be started."""
    if isinstance(exc, subprocess.TimeoutExpired):
        return EmbeddedBackendError(f"embedded {program} timed out after {exc.timeout:.0f} s")
    if os.geteuid() == 0 and isinstance(exc, subprocess.SubprocessError):
        # The only root-specific step in the child is entering a user namespace.
        return EmbeddedBackendError(
            f"cannot start embedded {program} as root: PostgreSQL refuses root and user "
            "namespaces are unavailable; run as a non-root user, or set REDIS_URL and DATABASE_URL"
        )
    return EmbeddedBackendError(f"cannot start embedded {program}: {exc}")


def wait_until(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    what: str,
    log_path: pathlib.Path,
    deadline: float,
) -> None:
    """Poll `ready` until it holds; raise if the process exits or the deadline passes."""
    while not ready():
        code = process.poll()
        if code is not None:
            reason = last_line(tail(log_path))
            raise EmbeddedBackendError(f"embedded {what} exited with code {code}: {reason}")
        if time.monotonic() > deadline:
            raise EmbeddedBackendError(f"embedded {what} not ready in time; see {log_path}")
        time.sleep(POLL_S)


def child_env() -> dict[str, str]:
    """Our environment without `PG*` variables (PGHOST, PGDATA... would override our
    arguments in the PostgreSQL tools)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def tail(path: pathlib.Path) -> str:
    """The last 8 KiB of a log file ("" if unreadable)."""
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 8192))
            return file.read().decode(errors="replace")
    except OSError:
        return ""


def last_line(text: str) -> str:
    """The most telling line of a server's output: its last FATAL/ERROR, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "FATAL" in line or "ERROR" in line:
            return line[:300]
    return lines[-1][:300] if lines else "no output"
