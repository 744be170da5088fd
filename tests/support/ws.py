"""A WebSocket client for `WS /v1/ws` tests: JSON messages and the server's close code."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Bounds a failing test only (a message that never comes): nothing asserts on time.
RECV_DEADLINE_S = 30.0


@dataclass
class Closed:
    """How the server closed the socket."""

    code: int | None
    reason: str


@dataclass
class WsClient:
    """One open socket."""

    socket: ClientConnection

    async def send(self, message: dict[str, Any] | str) -> None:
        """Send a JSON message (a str is sent as is, for bad messages)."""
        await self.socket.send(message if isinstance(message, str) else json.dumps(message))

    async def subscribe(self, job_id: str, last_event_id: str | None = None) -> None:
        """Ask to follow `job_id` (from after `last_event_id`)."""
        message: dict[str, Any] = {"type": "subscribe", "job_id": job_id}
        if last_event_id is not None:
            message["last_event_id"] = last_event_id
        await self.send(message)

    async def recv(self) -> dict[str, Any]:
        """The next message (fails if the socket closes first)."""
        async with asyncio.timeout(RECV_DEADLINE_S):
            text = await self.socket.recv()
        body: dict[str, Any] = json.loads(text)
        return body

    async def until(self, done: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Messages up to and including the first one `done` accepts."""
        out: list[dict[str, Any]] = []
        while True:
            message = await self.recv()
            out.append(message)
            if done(message):
                return out

    async def closed(self) -> Closed:
        """Read until the server closes the socket; its close code and reason."""
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(RECV_DEADLINE_S):
                while True:
                    await self.socket.recv()
        # 1006 (abnormal) when the server sent no close frame.
        return Closed(self.socket.close_code, self.socket.close_reason or "")


def ws_url(base: str, query: str = "") -> str:
    """The `/v1/ws` URL of a served app's base URL."""
    return base.replace("http://", "ws://", 1) + "/v1/ws" + (f"?{query}" if query else "")


@contextlib.asynccontextmanager
async def open_ws(
    base: str, *, headers: dict[str, str] | None = None, query: str = ""
) -> AsyncIterator[WsClient]:
    """A socket to the served app at `base` (without client-side pings: the server's)."""
    async with connect(
        ws_url(base, query), additional_headers=headers or {}, ping_interval=None
    ) as socket:
        yield WsClient(socket)


def is_unsubscribed(job_id: str) -> Callable[[dict[str, Any]], bool]:
    """Whether a message ends `job_id`'s subscription."""
    return lambda m: m["type"] == "unsubscribed" and m["job_id"] == job_id
