"""Each response leaves in one write, and nothing about HTTP/1.1 changes for clients.

The write count is the protocol's contract with the transport, so the first tests drive
the protocol on a recording transport; the last ones run it in a real uvicorn server on
a socket and read what a client reads.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from gateway.fastpath.one_write import OneWriteHttpToolsProtocol
from tests.support.wait import wait_until

BODY = b'{"id":"12-345"}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers by path: a JSON body, a streamed body, or an echo of the request body."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = BODY
    if path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RecordingTransport(asyncio.Transport):
    """What the protocol wrote, one entry per `write` call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _exchange(request: bytes) -> RecordingTransport:
    config = uvicorn.Config(app, http=OneWriteHttpToolsProtocol, log_config=None)
    config.load()
    protocol = OneWriteHttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(request)
    for _ in range(20):  # let the request's task run to the end
        await asyncio.sleep(0)
    protocol.connection_lost(None)
    return transport


async def test_head_and_body_of_a_response_leave_in_one_write() -> None:
    transport = await _exchange(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
    assert len(transport.writes) == 1
    head, _, body = transport.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 15" in head
    assert body == BODY


async def test_two_pipelined_requests_get_one_write_each() -> None:
    request = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
    transport = await _exchange(request + request)
    assert len(transport.writes) == 2
    assert all(w.endswith(BODY) and w.startswith(b"HTTP/1.1 200") for w in transport.writes)


async def test_a_head_answer_is_written_when_the_response_completes() -> None:
    transport = await _exchange(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\n")  # no body


async def test_a_streamed_body_sends_its_first_part_with_the_head() -> None:
    transport = await _exchange(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    first = transport.writes[0]
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in first
    assert first.endswith(b"4\r\none,\r\n")
    assert b"".join(transport.writes[1:]) == b"4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"


async def test_a_closing_response_is_written_before_the_connection_closes() -> None:
    transport = await _exchange(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert transport.closed
    assert len(transport.writes) == 1
    assert transport.writes[0].endswith(BODY)


async def test_100_continue_is_not_held_back() -> None:
    transport = await _exchange(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi"
    )
    assert transport.writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    # Left to uvicorn entirely: head and body in writes of their own.
    assert transport.writes[1].startswith(b"HTTP/1.1 200 OK")
    assert transport.writes[2] == b"hi"


@pytest.fixture
async def server_port() -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=OneWriteHttpToolsProtocol, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_until(lambda: server.started, what="uvicorn listening")  # it has no event
    yield sock.getsockname()[1]
    server.should_exit = True
    await task


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    if b"content-length" in headers:
        return head, await reader.readexactly(int(headers[b"content-length"]))
    body = b""
    while (size := int((await reader.readline()).strip(), 16)) != 0:
        body += await reader.readexactly(size)
        await reader.readline()
    await reader.readline()
    return head, body


async def test_a_real_connection_reads_keep_alive_head_stream_and_upload(server_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
    try:
        writer.write(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await _read_response(reader))[1] == BODY
        writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (await _read_response(reader))[1] == b"one,two,three"
        writer.write(b"HEAD /x HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        writer.write(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        assert (await _read_response(reader))[1] == b"hello"
        writer.write(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert (await _read_response(reader))[1] == BODY
        assert await reader.read() == b""  # the server closed after the last response
    finally:
        writer.close()
