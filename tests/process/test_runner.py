"""The multi-server runner: bind errors, a dying server, signals reach every server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from gateway.process.runner import (
    EXIT_FAILURE,
    EXIT_OK,
    PortBindError,
    Runner,
    ServerEntry,
    bind_socket,
    make_server,
)
from tests.support.ports import port_open
from tests.support.wait import wait_until


def _app(fail_startup: bool = False) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if fail_startup:
            raise RuntimeError("cannot start")
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


def _entry(name: str, app: FastAPI) -> ServerEntry:
    sock = bind_socket("127.0.0.1", 0, name)
    return ServerEntry(name, make_server(app, sock, graceful_timeout_s=2), sock)


def _port(entry: ServerEntry) -> int:
    port: int = entry.sock.getsockname()[1]
    return port


def test_bind_error_names_the_port() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortBindError, match=f"parcel port 127.0.0.1:{port}"):
            bind_socket("127.0.0.1", port, "parcel")


async def _wait_serving(port: int) -> None:
    async with httpx.AsyncClient() as client:

        async def serving() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return (await client.get(f"http://127.0.0.1:{port}/ping")).status_code == 200
            return False

        await wait_until(serving, what=f"port {port} serving")


async def test_sigterm_stops_every_server_and_exits_zero() -> None:
    entries = [_entry(n, _app()) for n in ("a", "b", "c")]
    ports = [_port(e) for e in entries]
    stopping = asyncio.Event()
    runner = asyncio.create_task(Runner(entries, stopping).run())
    for port in ports:
        await _wait_serving(port)
    os.kill(os.getpid(), signal.SIGTERM)
    code = await asyncio.wait_for(runner, 10)
    assert code == EXIT_OK
    assert stopping.is_set()
    assert not any(port_open(p) for p in ports)


async def test_a_server_that_dies_stops_the_others_with_failure() -> None:
    healthy = [_entry("a", _app()), _entry("b", _app())]
    dying = _entry("c", _app(fail_startup=True))
    entries = [*healthy, dying]
    ports = [_port(e) for e in entries]
    code = await asyncio.wait_for(Runner(entries, asyncio.Event()).run(), 10)
    assert code == EXIT_FAILURE
    assert not any(port_open(p) for p in ports)
