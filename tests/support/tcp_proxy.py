"""A TCP proxy that tests can cut and restore to simulate a backend outage.

Stopping the machine's real Redis or PostgreSQL would disturb everything else using it,
so outage tests put this proxy between the gateway and the real server: `cut()` closes
the listener and every open connection (clients see resets and refused connects, as when
the server dies), `restore()` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.engine import make_url

from tests.support.ports import free_port


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream host:port until cut."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen on `self.port`."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            transport.abort()
        self._writers.clear()
        await asyncio.sleep(0)

    async def restore(self) -> None:
        """Accept connections again on the same port."""
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        """Stop for good."""
        await self.cut()


@contextlib.asynccontextmanager
async def database_proxy(database_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A started proxy in front of `database_url`'s server, and the URL through it."""
    db = make_url(database_url)
    proxy = TcpProxy(db.host or "127.0.0.1", db.port or 5432)
    await proxy.start()
    try:
        yield proxy, db.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    finally:
        await proxy.close()
