"""uvicorn's httptools protocol, with each response's head and body in one write.

uvicorn writes the status line and headers of a response as soon as the app sends
`http.response.start`, and the body in a second write when `http.response.body`
arrives. On loopback under load each write is a system call (uvloop writes at once when
nothing is queued), and on a cache hit the two were ~15 % of the gateway's CPU per
request. Here the head is held until the next write of the same response and both go
out as one; a head that nothing follows (a `HEAD` answer) goes out when the response
completes or the connection closes.

Only the writes of the request/response cycle pass through the holding transport;
everything else about the protocol (parsing, keep-alive, pipelining, flow control,
WebSocket upgrades, shutdown) is uvicorn's own. Requests that announce
`Expect: 100-continue` are left alone: their first write is the interim `100 Continue`
the client waits for.

The hook is uvicorn's `_start_asgi_task`, which every request passes through (pipelined
ones too). It is private: a uvicorn without it leaves responses in two writes, which
`tests/fastpath/test_one_write.py` would report.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class _HeadHoldingTransport:
    """The cycle's view of the connection: holds the first write until the second."""

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        # `None` while nothing was written yet; then the held head, or b"" once flushed.

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is None:
            self._held = bytes(data)
        elif held:
            self._held = b""
            self._transport.write(held + data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write a held head now (the response completed without a second write)."""
        held = self._held
        if held:
            self._held = b""
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` whose responses leave in one write; see the module docstring."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if not cycle.waiting_for_100_continue:
            holding = _HeadHoldingTransport(cycle.transport)
            cycle.transport = holding  # type: ignore[assignment]
            on_response = cycle.on_response

            def response_complete() -> None:
                holding.flush()
                on_response()

            cycle.on_response = response_complete
        super()._start_asgi_task(cycle, app)
