"""The real gateway stopped while a request waits on a stalled dependency.

The grace period (`GRACEFUL_TIMEOUT_S`) ends with the request still waiting; uvicorn then
cancels it. The client must get a 503 problem document naming the dependency, with
`Retry-After`, and the log one `request` line for it and no traceback.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gateway.core.resources import BackendUrls, open_resources
from gateway.core.settings import Settings
from tests.support.gateway_process import start_gateway
from tests.support.tcp_proxy import TcpProxy, database_proxy, redis_proxy
from tests.support.work import make_token

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

_T = TypeVar("_T")


class StallingProxy:
    """Forwards to a backend on its own thread, until the gateway sends `marker`: that
    connection then stays open and keeps being read, but forwards nothing more (a
    backend that hangs on one request rather than fails: no reset, no refusal, no
    answer). Other connections, such as the process's probes, keep working."""

    def __init__(self, target: TcpProxy, marker: bytes) -> None:
        # `target` (never started) says where the backend is, TCP or unix socket, which
        # port to listen on and the backend URL through it (`target.url`).
        self.target = target
        self.url = target.url
        self.marker = marker
        self.stalled = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, "127.0.0.1", target.port))

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.target.unix_path:
            up_reader, up_writer = await asyncio.open_unix_connection(self.target.unix_path)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self.target.upstream)

        async def to_backend() -> None:
            holding = False
            while data := await reader.read(65536):
                if holding or self.marker in data:
                    holding = True
                    self.stalled.set()
                    continue
                up_writer.write(data)
                await up_writer.drain()

        async def to_gateway() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        try:
            await asyncio.gather(to_backend(), to_gateway())
        except OSError:
            pass
        finally:
            writer.close()
            up_writer.close()

    async def _stop(self) -> None:
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    def close(self) -> None:
        """Stop the proxy, its connections and its thread."""
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.fixture
def worker_token(settings: Settings) -> str:
    async def create() -> str:
        urls = BackendUrls(settings.redis_url or "", settings.database_url or "")
        async with open_resources(settings, urls) as resources:
            return await make_token(resources, "parcel", "worker")

    return asyncio.run(create())


# What the request sends to each backend while verifying its token: the revocation
# epoch's key (Redis), the token table's name (PostgreSQL). Probes and pool pings send
# neither, so only the request's own connection stalls.
_MARKER = {"redis": b"worker_tokens:epoch", "database": b"worker_tokens"}


@pytest.fixture(params=["redis", "database"])
def stalled(
    request: pytest.FixtureRequest, settings: Settings
) -> Iterator[tuple[str, StallingProxy]]:
    dependency: str = request.param
    url = settings.redis_url if dependency == "redis" else settings.database_url
    assert url is not None
    target, _ = redis_proxy(url) if dependency == "redis" else database_proxy(url)
    proxy = StallingProxy(target, _MARKER[dependency])
    yield dependency, proxy
    proxy.close()


def test_a_request_cut_by_shutdown_gets_a_503_naming_the_dependency(
    settings: Settings,
    tmp_path: Path,
    worker_token: str,
    stalled: tuple[str, StallingProxy],
) -> None:
    dependency, proxy = stalled
    redis_url = settings.redis_url or ""
    database_url = settings.database_url or ""
    if dependency == "redis":
        redis_url = proxy.url
    else:
        database_url = proxy.url
    gateway = start_gateway(
        tmp_path,
        {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "REDIS_KEY_PREFIX": settings.redis_key_prefix,
            "GRACEFUL_TIMEOUT_S": "1",
            # The test database is migrated already; the process need not do it again.
            "RUN_MIGRATIONS": "false",
        },
    )
    try:
        gateway.wait_ready()
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(
                httpx.get,
                gateway.url("parcel", "/internal/work"),
                params={"worker_id": "w-1", "platforms": "alpha"},
                headers={"X-Worker-Token": worker_token, "X-Request-ID": "cut-by-shutdown"},
                timeout=60,
            )
            # Then the request waits on the stalled backend.
            assert proxy.stalled.wait(timeout=30), gateway.output()
            gateway.proc.send_signal(signal.SIGTERM)
            response = answer.result(timeout=60)
        # The request's log line follows its answer.
        deadline = time.monotonic() + 30
        while '"request_id": "cut-by-shutdown"' not in gateway.output():
            assert time.monotonic() < deadline, gateway.output()
            time.sleep(0.05)
    finally:
        try:
            exit_code = gateway.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            gateway.proc.kill()
            gateway.proc.wait(timeout=60)
            raise AssertionError(f"the gateway did not exit:\n{gateway.output()}") from None

    output = gateway.output()
    # The stalled backend does not hold the process: it closes its resources and exits 0.
    assert exit_code == 0, output
    assert response.status_code == 503, (response.text, output)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    problem = response.json()
    assert problem["dependency"] == dependency
    assert problem["request_id"] == "cut-by-shutdown"
    assert "Traceback" not in output
    assert "Exception in ASGI application" not in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    request_lines = [
        line
        for line in lines
        if line.get("request_id") == "cut-by-shutdown" and line["event"] == "request"
    ]
    assert len(request_lines) == 1, output
    assert request_lines[0]["status"] == 503
    assert request_lines[0]["cancelled_waiting_on"] == dependency
