"""The embedded PostgreSQL and Redis: real servers, started, stopped and recovered."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import psutil
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.core.resources import BackendUrls, open_resources
from gateway.core.settings import Settings
from gateway.embedded import EmbeddedBackendError, EmbeddedBackends, EmbeddedUrls
from gateway.work.models import TaskIn
from gateway.work.plane import WorkerPlane
from gateway.work.stats import queue_stats

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVER_NAMES = {"postgres", "redis-server"}


@pytest.fixture(scope="module")
def template_pgdata(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PostgreSQL cluster initialised once (initdb is the slow part of a first start)."""
    data_dir = tmp_path_factory.mktemp("template") / "var"
    with EmbeddedBackends(data_dir):
        pass
    return data_dir / "postgres" / "data"


def fresh_data_dir(template_pgdata: Path, data_dir: Path) -> Path:
    """A data dir of its own, holding a copy of the template cluster."""
    shutil.copytree(template_pgdata, data_dir / "postgres" / "data")
    return data_dir


@pytest.fixture
def data_dir(tmp_path: Path, template_pgdata: Path) -> Path:
    """This test's data dir."""
    return fresh_data_dir(template_pgdata, tmp_path / "var")


@pytest.fixture
def embedded(data_dir: Path) -> Iterator[EmbeddedBackends]:
    """Embedded backends under this test's data dir, stopped after the test."""
    backends = EmbeddedBackends(data_dir)
    yield backends
    backends.stop()


def server_children(data_dir: Path) -> list[psutil.Process]:
    """The postmaster and redis-server this process runs under `data_dir`.

    Filtered by working directory: the session's own embedded servers (tests/conftest.py)
    are children of this process too.
    """
    return [
        p
        for p in psutil.Process().children()
        if p.name() in SERVER_NAMES and Path(p.cwd()).is_relative_to(data_dir.resolve())
    ]


def socket_paths(urls: EmbeddedUrls) -> list[str]:
    """The unix sockets the two URLs point at."""
    redis_path = unquote(urlparse(urls.redis_url).path)
    pg_dir = parse_qs(urlparse(urls.database_url).query)["host"][0]
    return [redis_path, os.path.join(pg_dir, ".s.PGSQL.5432")]


def accepts(path: str) -> bool:
    """Whether something listens on the unix socket at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


async def redis_roundtrip(url: str, key: str, value: str | None = None) -> bytes | None:
    """SET `key` (when `value` is given), then GET it back."""
    client = Redis.from_url(url)
    try:
        if value is not None:
            await client.set(key, value)
        result = await client.get(key)
        assert result is None or isinstance(result, bytes)
        return result
    finally:
        await client.aclose()


async def redis_config(url: str, name: str) -> str:
    """One Redis server setting."""
    client = Redis.from_url(url, decode_responses=True)
    try:
        value = (await client.config_get(name))[name]
        assert isinstance(value, str)
        return value
    finally:
        await client.aclose()


async def sql(url: str, *statements: str) -> list[object]:
    """Run statements in one transaction; returns the first column of the last result."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            rows: list[object] = []
            for statement in statements:
                result = await conn.execute(text(statement))
                rows = list(result.scalars()) if result.returns_rows else []
            return rows
    finally:
        await engine.dispose()


def run_owner_process(
    data_dir: Path, *, in_thread: bool
) -> tuple[subprocess.Popen[str], list[int]]:
    """A separate 'gateway' that starts the backends and then waits to be killed."""
    start = "EmbeddedBackends(Path(sys.argv[1])).start()"
    if in_thread:
        start = f"t = threading.Thread(target=lambda: {start}); t.start(); t.join()"
    script = (
        "import sys, threading, time, psutil\n"
        "from pathlib import Path\n"
        "from gateway.embedded import EmbeddedBackends\n"
        f"{start}\n"
        "print('PIDS', *[p.pid for p in psutil.Process().children()], flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(data_dir)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert owner.stdout is not None
    with owner.stdout:
        # Log lines come first; the pid line is the owner's signal that both are ready.
        for line in owner.stdout:
            if line.startswith("PIDS "):
                pids = [int(pid) for pid in line.split()[1:]]
                break
        else:
            pids = []
    if len(pids) != 2:
        kill_owner(owner)
        pytest.fail("the owner process did not start both servers")
    return owner, pids


def kill_owner(owner: subprocess.Popen[str]) -> None:
    """SIGKILL the owner: no cleanup code of it runs."""
    owner.send_signal(signal.SIGKILL)
    owner.wait()


def any_exists(paths: Iterable[str]) -> bool:
    """Whether any of the paths exists."""
    return any(os.path.exists(path) for path in paths)


def running(pid: int) -> bool:
    """Whether `pid` runs; a zombie nobody reaped yet (no init in a container) does not."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def wait_gone(pids: list[int], timeout: float = 10.0) -> bool:
    """Wait for processes that are not our children to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(running(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


async def test_serves_redis_and_postgres_then_stops_cleanly(
    embedded: EmbeddedBackends, data_dir: Path
) -> None:
    urls = embedded.start()
    assert embedded.start() == urls  # idempotent while running
    children = server_children(data_dir)
    assert {p.name() for p in children} == SERVER_NAMES

    assert await redis_roundtrip(urls.redis_url, "greeting", "hello") == b"hello"
    assert await sql(urls.database_url, "SELECT 1") == [1]
    assert await sql(urls.database_url, "SELECT current_database()") == ["gateway"]
    await sql(urls.database_url, "CREATE TABLE probe (id int)", "INSERT INTO probe VALUES (7)")
    assert await sql(urls.database_url, "SELECT id FROM probe") == [7]
    # Trust auth and an unauthenticated Redis must never be reachable over TCP.
    assert await sql(urls.database_url, "SHOW listen_addresses") == [""]
    assert await redis_config(urls.redis_url, "port") == "0"

    embedded.stop()
    embedded.stop()  # a second stop is a no-op
    assert not any(p.is_running() for p in children)
    assert not any(accepts(path) for path in socket_paths(urls))


@contextlib.asynccontextmanager
async def worker_plane(urls: EmbeddedUrls) -> AsyncIterator[WorkerPlane]:
    """The parcel worker plane on the embedded servers (not started: no reaper)."""
    settings = Settings(
        _env_file=None, environment="test", redis_url=urls.redis_url, database_url=urls.database_url
    )
    async with open_resources(settings, BackendUrls(urls.redis_url, urls.database_url)) as res:
        assert res.redis_persistence.mode == "aof"  # what the start-up check read
        yield WorkerPlane(res, "parcel")


async def test_restart_keeps_postgres_data_and_queued_tasks(data_dir: Path) -> None:
    with EmbeddedBackends(data_dir) as first:
        urls = first.start()
        await sql(urls.database_url, "CREATE TABLE kept (v text)", "INSERT INTO kept VALUES ('x')")
        async with worker_plane(urls) as plane:
            outcome = await plane.enqueue([TaskIn(platform="alpha", key="kept-1")])
            assert outcome.new == [True]
    with EmbeddedBackends(data_dir) as second:
        urls = second.start()
        assert await sql(urls.database_url, "SELECT v FROM kept") == ["x"]
        async with worker_plane(urls) as plane:
            stats = await queue_stats(plane.queue, worker_expiry_s=60)
            assert stats.depth[("alpha", "ready")] == 1  # the queued task survived the stop
    # AOF only: no snapshot, whose failed write would block Redis's exit on SIGTERM.
    assert (data_dir / "redis" / "appendonly.aof").exists()
    assert not any_exists([str(data_dir / "redis" / "dump.rdb")])


async def test_start_recovers_after_children_were_sigkilled(
    embedded: EmbeddedBackends, data_dir: Path
) -> None:
    embedded.start()
    children = server_children(data_dir)
    assert len(children) == 2
    for child in children:
        child.send_signal(signal.SIGKILL)
    psutil.wait_procs(children, timeout=5)

    urls = embedded.start()  # notices the dead servers and starts fresh ones
    assert await sql(urls.database_url, "SELECT 1") == [1]
    assert await redis_roundtrip(urls.redis_url, "after", "kill") == b"kill"


def test_second_owner_of_a_data_dir_is_refused(embedded: EmbeddedBackends, data_dir: Path) -> None:
    embedded.start()
    with pytest.raises(EmbeddedBackendError, match="in use by another gateway process"):
        EmbeddedBackends(data_dir).start()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
async def test_killed_gateway_takes_its_servers_down(data_dir: Path) -> None:
    owner, pids = run_owner_process(data_dir, in_thread=False)
    kill_owner(owner)
    assert wait_gone(pids), "servers outlived their killed owner"

    with EmbeddedBackends(data_dir) as again:
        urls = again.start()
        assert await sql(urls.database_url, "SELECT 1") == [1]


async def test_orphaned_servers_are_stopped_on_next_start(data_dir: Path) -> None:
    # Started off the main thread, the servers get no parent-death signal (the same as
    # on macOS), so they outlive the killed owner until the next start finds them.
    owner, pids = run_owner_process(data_dir, in_thread=True)
    kill_owner(owner)
    assert all(running(pid) for pid in pids)

    with EmbeddedBackends(data_dir) as again:
        urls = again.start()
        assert wait_gone(pids)  # start() stopped them; the bound only ends a failing test
        assert await sql(urls.database_url, "SELECT 1") == [1]
        assert await redis_roundtrip(urls.redis_url, "k", "v") == b"v"


async def test_long_data_dir_moves_sockets_to_a_short_dir(
    tmp_path: Path, template_pgdata: Path
) -> None:
    data_dir = fresh_data_dir(template_pgdata, tmp_path / ("d" * 60) / ("e" * 60) / "var")
    with EmbeddedBackends(data_dir, database_name="other db") as embedded:
        urls = embedded.start()
        paths = socket_paths(urls)
        assert all(len(path) <= 100 and str(data_dir) not in path for path in paths)
        assert await sql(urls.database_url, "SELECT current_database()") == ["other db"]
        assert await redis_roundtrip(urls.redis_url, "k", "v") == b"v"
    assert not any_exists(os.path.dirname(path) for path in paths)  # the temp dir is gone


def test_unusable_data_dir_fails_with_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    backends = EmbeddedBackends(blocker / "var")
    with pytest.raises(EmbeddedBackendError, match="cannot create"):
        backends.start()
    backends.stop()  # safe after a failed start
