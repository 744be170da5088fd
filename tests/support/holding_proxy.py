"""A TCP proxy that can *hold* traffic: a network partition rather than a dead server.

`TcpProxy.cut()` resets connections, which every driver notices at once. A partition is
worse: packets are dropped, nothing is refused or reset, and a client learns of it only
from its own timeouts. `hold()` emulates that: connections stay open and new ones are
accepted, but no byte is forwarded either way until `release()`. Build one in front of a
backend URL (TCP or the embedded servers' unix sockets) with
`database_proxy(url, HoldingProxy)` or `redis_proxy(url, HoldingProxy)`.
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.support.tcp_proxy import TcpProxy


class HoldingProxy(TcpProxy):
    """A `TcpProxy` whose `hold()` stops forwarding without closing anything."""

    def __init__(
        self, upstream_host: str = "127.0.0.1", upstream_port: int = 0, *, unix_path: str = ""
    ) -> None:
        super().__init__(upstream_host, upstream_port, unix_path=unix_path)
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        # A held proxy still accepts (the SYN/ACK comes from the kernel anyway), but
        # does not even connect upstream until released: a handshake would go unanswered.
        await self._flowing.wait()
        try:
            up_reader, up_writer = await self._open_upstream()
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
        self._flowing.set()
        await self.cut()
