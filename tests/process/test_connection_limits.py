"""Connection bounds on a real uvicorn server (uvloop, as in production), raw sockets.

Each test configures short limits (half a second) and waits up to 30 s for the server to
act, so a slow machine changes how long a test takes, never its outcome. Every test runs
with the fast path on and off: the bounds sit in front of either protocol.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
import uvloop
from starlette.types import Message, Receive, Scope, Send

from gateway.process.connection_limits import ConnectionLimits
from gateway.process.runner import bind_socket, make_server

WAIT_S = 30.0
BIG = 16 * 1024 * 1024
SHORT = ConnectionLimits(
    head_timeout_s=0.5,
    body_timeout_s=0.5,
    body_min_rate=1024,
    write_buffer_bytes=65_536,
    write_stall_timeout_s=0.5,
    max_connections=1000,
)


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    received = 0
    more = True
    while more:
        event: Message = await receive()
        if event["type"] == "http.disconnect":
            return
        received += len(event.get("body", b""))
        more = event.get("more_body", False)
    body = b"x" * BIG if scope["path"] == "/big" else str(received).encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ServerThread:
    """A server from `make_server` on its own uvloop loop and thread."""

    def __init__(self, limits: ConnectionLimits, *, fastpath: bool) -> None:
        self.sock = bind_socket("127.0.0.1", 0, "test")
        self.port: int = self.sock.getsockname()[1]
        self.server = make_server(
            _app, self.sock, graceful_timeout_s=1, fastpath=fastpath, limits=limits
        )
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        _wait_for(lambda: self.server.started)

    def _run(self) -> None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(self.server.serve(sockets=[self.sock]))

    def connections(self) -> int:
        """Open client connections, as the server counts them."""
        return len(self.server.server_state.connections)

    def stop(self) -> None:
        """Stop serving and close the loop."""
        # Read by the server's main loop every 0.1 s.
        self.server.should_exit = True
        self.thread.join(timeout=WAIT_S)
        self.sock.close()


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


Serve = Callable[..., ServerThread]


@pytest.fixture(params=[True, False], ids=["fastpath", "stock"])
def fastpath(request: pytest.FixtureRequest) -> bool:
    on: bool = request.param
    return on


@pytest.fixture
def serve(fastpath: bool) -> Iterator[Serve]:
    servers: list[ServerThread] = []

    def start(limits: ConnectionLimits = SHORT) -> ServerThread:
        servers.append(ServerThread(limits, fastpath=fastpath))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _connect(port: int, *, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    return sock


def _closed_within(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closed the connection (EOF or reset) within `timeout`; any
    bytes it sent on the way are read and dropped."""
    readable, _, _ = select.select([sock], [], [], timeout)
    if not readable:
        return False
    try:
        return not sock.recv(65_536)
    except ConnectionResetError:
        return True


def _closed_by_server(sock: socket.socket) -> bool:
    """Wait for the server to close; False if it does not in time."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if _closed_within(sock, 0.1):
            return True
    return False


def _trickle_until_closed(sock: socket.socket, data: bytes) -> bool:
    """Send `data` one byte per 50 ms (far slower than any limit here) until the server
    closes the connection; False if all of it went out or the server did not act."""
    deadline = time.monotonic() + WAIT_S
    for byte in data:
        if time.monotonic() > deadline:
            return False
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return True
        if _closed_within(sock, 0.05):
            return True
    return False


def _exchange(port: int, request: bytes) -> bytes:
    with _connect(port) as sock:
        sock.settimeout(WAIT_S)
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_connection_that_never_sends_is_closed(serve: Serve) -> None:
    server = serve()
    with _connect(server.port) as sock:
        assert _closed_by_server(sock)


def test_a_head_sent_byte_by_byte_is_cut(serve: Serve) -> None:
    server = serve()
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 10_000 + b"\r\n\r\n"
    with _connect(server.port) as sock:
        assert _trickle_until_closed(sock, head)


def test_a_body_sent_byte_by_byte_is_cut(serve: Serve) -> None:
    server = serve()
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n"
    with _connect(server.port) as sock:
        sock.sendall(head)
        assert _trickle_until_closed(sock, b"b" * 10_000)


def test_a_client_that_does_not_read_is_cut_and_its_answer_freed(serve: Serve) -> None:
    server = serve()
    # A small receive window, so the kernel cannot absorb the whole answer for it.
    with _connect(server.port, rcvbuf=4096) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        _wait_for(lambda: server.connections() == 1)
        # A plain close would wait for the buffer to drain; only an abort ends it.
        _wait_for(lambda: server.connections() == 0)


def test_clients_within_the_limits_are_served(serve: Serve) -> None:
    server = serve()
    answer = _exchange(server.port, b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b"x" * 1000)
    assert len(answer) > BIG
    upload = b"y" * 200_000
    request = b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    request += b"Content-Length: %d\r\n\r\n" % len(upload) + upload
    assert _exchange(server.port, request).endswith(b"\r\n\r\n200000")


def test_connections_beyond_the_cap_get_a_503_problem(serve: Serve) -> None:
    server = serve(replace(SHORT, head_timeout_s=WAIT_S * 2, max_connections=2))
    first, second = _connect(server.port), _connect(server.port)
    try:
        _wait_for(lambda: server.connections() == 2)
        answer = _exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503")
        lowered = head.lower()
        assert b"content-type: application/problem+json" in lowered
        assert b"retry-after: 1" in lowered
        assert b"connection: close" in lowered
        assert json.loads(body)["status"] == 503
        first.close()
        _wait_for(lambda: server.connections() < 2)
        again = _exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert again.startswith(b"HTTP/1.1 200")
    finally:
        first.close()
        second.close()
