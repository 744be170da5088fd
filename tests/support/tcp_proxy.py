"""A TCP proxy that tests can cut and restore to simulate a backend outage.

Stopping the machine's real Redis or PostgreSQL would disturb everything else using it,
so outage tests put this proxy between the gateway and the real server: `cut()` closes
the listener and every open connection (clients see resets and refused connects, as when
the server dies), `restore()` listens again on the same port.

The proxy always listens on loopback TCP, but its upstream may be a unix socket: the
embedded servers (the README's test command without `REDIS_URL`/`DATABASE_URL`) listen
only on unix sockets, on purpose (trust auth, see `gateway/embedded`). Build proxies with
`redis_proxy(url)` / `database_proxy(url)`, which understand both kinds of URL and return
the URL that goes through the proxy; reading host and port off a unix-socket URL would
silently fall back to 127.0.0.1:6379/5432, some other server or none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar, overload
from urllib.parse import parse_qs, unquote, urlsplit

from sqlalchemy.engine import make_url

from tests.support.ports import free_port

_LOOPBACK = "127.0.0.1"

P = TypeVar("P", bound="TcpProxy")


class TcpProxy:
    """Forwards 127.0.0.1:<port> to an upstream host:port (or unix socket) until cut."""

    def __init__(
        self, upstream_host: str = _LOOPBACK, upstream_port: int = 0, *, unix_path: str = ""
    ) -> None:
        if not unix_path and not upstream_port:
            raise ValueError("TcpProxy needs an upstream port or a unix socket path")
        self.upstream = (upstream_host, upstream_port)
        self.unix_path = unix_path
        self.port = free_port()
        # The backend URL through this proxy, when built by redis_proxy/database_proxy.
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen on `self.port`."""
        self._server = await asyncio.start_server(self._handle, _LOOPBACK, self.port)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.unix_path:
            return await asyncio.open_unix_connection(self.unix_path)
        return await asyncio.open_connection(*self.upstream)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await self._open_upstream()
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
        await asyncio.sleep(0)  # let the aborted transports' callbacks run

    async def restore(self) -> None:
        """Accept connections again on the same port."""
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        """Stop for good."""
        await self.cut()


@overload
def redis_proxy(redis_url: str) -> tuple[TcpProxy, str]: ...
@overload
def redis_proxy(redis_url: str, kind: type[P]) -> tuple[P, str]: ...
def redis_proxy(redis_url: str, kind: type[TcpProxy] = TcpProxy) -> tuple[TcpProxy, str]:
    """A proxy (not started) in front of the Redis at `redis_url`, and the URL through it.

    Handles `redis://host:port/db` and the embedded `unix:///path/redis.sock?db=N`;
    `kind` is the proxy class (a `TcpProxy` subclass such as `HoldingProxy`).
    """
    url = urlsplit(redis_url)
    if url.scheme == "unix":
        proxy = kind(unix_path=unquote(url.path))
        db = parse_qs(url.query).get("db", ["0"])[0]
    else:
        proxy = kind(url.hostname or _LOOPBACK, url.port or 6379)
        db = url.path.lstrip("/") or "0"
    auth = url.netloc.rpartition("@")[0]
    proxy.url = f"redis://{auth + '@' if auth else ''}{_LOOPBACK}:{proxy.port}/{db}"
    return proxy, proxy.url


@overload
def database_proxy(database_url: str) -> tuple[TcpProxy, str]: ...
@overload
def database_proxy(database_url: str, kind: type[P]) -> tuple[P, str]: ...
def database_proxy(database_url: str, kind: type[TcpProxy] = TcpProxy) -> tuple[TcpProxy, str]:
    """A proxy (not started) in front of the PostgreSQL at `database_url`, and the URL through it.

    Handles TCP URLs and unix-socket ones (the embedded server's `...@/db?host=/socket/dir`,
    or a directory as the host), where the socket is `<dir>/.s.PGSQL.<port>` as libpq has it.
    """
    url = make_url(database_url)
    socket_dir = url.query.get("host") or (url.host if url.host and url.host[0] == "/" else "")
    if isinstance(socket_dir, tuple):  # ?host=a&host=b: libpq tries them in order
        socket_dir = socket_dir[0]
    if socket_dir:
        proxy = kind(unix_path=f"{socket_dir}/.s.PGSQL.{url.port or 5432}")
    else:
        proxy = kind(url.host or _LOOPBACK, url.port or 5432)
    proxied = url.difference_update_query(["host"]).set(host=_LOOPBACK, port=proxy.port)
    proxy.url = proxied.render_as_string(hide_password=False)
    return proxy, proxy.url


@contextlib.asynccontextmanager
async def started_database_proxy(database_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """`database_proxy`, started for the block and closed after it."""
    proxy, proxied = database_proxy(database_url)
    await proxy.start()
    try:
        yield proxy, proxied
    finally:
        await proxy.close()
