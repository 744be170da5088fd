"""A TCP proxy that can *hold* traffic: a network partition rather than a dead server.

`TcpProxy.cut()` resets connections, which every driver notices at once. A partition is
worse: packets are dropped, nothing is refused or reset, and a client learns of it only
from its own timeouts. `hold()` emulates that: connections stay open and new ones are
accepted, but no byte is forwarded either way until `release()`.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.support.ports import free_port


class HoldingProxy:
    """Forwards 127.0.0.1:<port> to an upstream host:port; `hold()` stops forwarding."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen on `self.port`."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        # A held proxy still accepts (the SYN/ACK comes from the kernel anyway), but
        # does not even connect upstream until released: a handshake would go unanswered.
        await self._flowing.wait()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    await self._flowing.wait()
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def hold(self) -> None:
        """Stop forwarding in both directions; connections stay open."""
        self._flowing.clear()

    def release(self) -> None:
        """Forward again (held bytes are delivered)."""
        self._flowing.set()

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._flowing.set()
        await asyncio.sleep(0)
