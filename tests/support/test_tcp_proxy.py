"""The outage proxy reaches the server a URL names, over TCP or a unix socket."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import asyncpg  # type: ignore[import-untyped]  # no stubs installed (as in gateway/)
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.engine import make_url

from tests.support.backends import TestBackends
from tests.support.tcp_proxy import TcpProxy, database_proxy, redis_proxy


@pytest.fixture
async def unix_echo() -> AsyncIterator[Path]:
    """A directory with an echo server on `<dir>/.s.PGSQL.5432` and `<dir>/redis.sock`."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    # Short on purpose: unix socket paths are limited to ~107 bytes, tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="gwt-") as name:
        directory = Path(name)
        servers = [
            await asyncio.start_unix_server(echo, str(directory / socket))
            for socket in (".s.PGSQL.5432", "redis.sock")
        ]
        yield directory
        for server in servers:
            server.close()
            await server.wait_closed()


async def _echoes(proxy: TcpProxy) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"ping")
    await writer.drain()
    answer = await asyncio.wait_for(reader.readexactly(4), timeout=30)
    writer.close()
    return answer


async def test_embedded_unix_socket_urls_are_proxied_to_their_sockets(unix_echo: Path) -> None:
    # The URL forms `gateway.embedded` returns; read as host:port they used to name
    # 127.0.0.1:6379 and :5432, whatever listens there (another server, or nothing).
    socket_dir = quote(str(unix_echo), safe="/")
    r_proxy, r_url = redis_proxy(f"unix://{socket_dir}/redis.sock?db=3")
    d_proxy, d_url = database_proxy(f"postgresql+asyncpg://postgres@/gwtest?host={socket_dir}")
    assert r_url == f"redis://127.0.0.1:{r_proxy.port}/3"
    proxied = make_url(d_url)
    assert (proxied.host, proxied.port, proxied.database) == ("127.0.0.1", d_proxy.port, "gwtest")
    assert "host" not in proxied.query
    for proxy in (r_proxy, d_proxy):
        await proxy.start()
        try:
            assert await _echoes(proxy) == b"ping"
        finally:
            await proxy.close()


async def test_redis_proxy_reaches_the_sessions_redis_until_cut(
    backends: TestBackends, redis_prefix: str
) -> None:
    proxy, url = redis_proxy(backends.redis_url)
    await proxy.start()
    direct = Redis.from_url(backends.redis_url)
    through = Redis.from_url(url, socket_timeout=30)
    try:
        await direct.set(f"{redis_prefix}marker", "same server")
        assert await through.get(f"{redis_prefix}marker") == b"same server"
        await proxy.cut()
        with pytest.raises(RedisConnectionError):
            await through.get(f"{redis_prefix}marker")
        await proxy.restore()
        assert await through.get(f"{redis_prefix}marker") == b"same server"
    finally:
        await through.aclose()
        await direct.aclose()
        await proxy.close()


async def test_database_proxy_reaches_the_sessions_database(database_url: str) -> None:
    proxy, url = database_proxy(database_url)
    await proxy.start()
    query = "SELECT current_database(), system_identifier FROM pg_control_system()"
    try:
        identities = []
        for dsn in (database_url, url):
            plain = make_url(dsn).set(drivername="postgresql").render_as_string(False)
            conn = await asyncpg.connect(plain, timeout=30)
            try:
                identities.append(tuple(await conn.fetchrow(query)))
            finally:
                await conn.close()
        assert identities[0] == identities[1]  # the same database of the same cluster
    finally:
        await proxy.close()
