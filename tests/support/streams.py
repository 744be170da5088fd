"""Helpers for live-stream tests: the harness's public app on a real HTTP server, and an
SSE client that parses `text/event-stream` as EventSource does."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from gateway.process.runner import bind_socket, make_server


@contextlib.asynccontextmanager
async def served(app: FastAPI, **server_options: Any) -> AsyncIterator[str]:
    """`app` (its lifespan already running) on a real uvicorn server; its base URL."""
    sock = bind_socket("127.0.0.1", 0, "test")
    server = make_server(app, sock, graceful_timeout_s=5, lifespan="off", **server_options)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Event:
    """One SSE event as EventSource dispatches it."""

    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        """The data as JSON."""
        return json.loads(self.data)


@dataclass
class SseStream:
    """An open SSE response: its events, the `retry:` hints and comments seen so far."""

    response: httpx.Response
    last_id: str | None = None
    retry: list[int] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    _lines: AsyncIterator[str] | None = None

    def lines(self) -> AsyncIterator[str]:
        """The response's lines (one iterator per stream, shared by every reader)."""
        if self._lines is None:
            self._lines = self.response.aiter_lines()
        return self._lines

    async def comment(self) -> str:
        """Read on until the next comment line (a keep-alive); its text."""
        async for line in self.lines():
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                return self.comments[-1]
        raise AssertionError("the stream ended before a comment")

    async def events(self) -> AsyncIterator[Event]:
        """Events until the server ends the stream."""
        kind, seen_id = "message", None
        data: list[str] = []
        async for line in self.lines():
            if line == "":
                if data:
                    if seen_id is not None:
                        self.last_id = seen_id
                    yield Event(kind, "\n".join(data), seen_id)
                kind, data, seen_id = "message", [], None
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "":
                self.comments.append(value)
            elif name == "event":
                kind = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                seen_id = value
            elif name == "retry" and value.isdigit():
                self.retry.append(int(value))

    async def take(self, count: int) -> list[Event]:
        """The next `count` events (fewer if the stream ends first)."""
        out: list[Event] = []
        if count <= 0:
            return out
        async for event in self.events():
            out.append(event)
            if len(out) == count:
                break
        return out

    async def until(self, *types: str) -> list[Event]:
        """Events up to and including the first of one of `types` (or the stream's end)."""
        out: list[Event] = []
        async for event in self.events():
            out.append(event)
            if event.event in types:
                break
        return out


@contextlib.asynccontextmanager
async def open_sse(
    client: httpx.AsyncClient, url: str, *, headers: dict[str, str] | None = None
) -> AsyncIterator[SseStream]:
    """GET `url` as an event stream (the response may be an error: check its status)."""
    async with client.stream(
        "GET", url, headers={"Accept": "text/event-stream", **(headers or {})}
    ) as response:
        yield SseStream(response)
