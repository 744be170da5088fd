"""A real local upstream (uvicorn in a thread) that counts requests and can be told to fail.

Stands in for the parser service: `GET /v1/properties/{id}` answers JSON with the number of
requests it has served for that path, so tests can count upstream calls exactly.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.ports import free_port
from tests.support.wait import wait_until_sync


@dataclass
class UpstreamControl:
    """What the upstream does next; tests flip these between requests."""

    status: int = 200
    delay_s: float = 0.0
    # While set, every request waits until it is released: the test decides when a
    # request in flight ends, instead of guessing with a delay.
    hold: threading.Event | None = None
    cache_control: str | None = "max-age=60"
    hits: Counter[str] = field(default_factory=Counter)
    last_headers: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Every request served so far."""
        return sum(self.hits.values())


def _app(control: UpstreamControl) -> Starlette:
    async def handle(request: Request) -> Response:
        path = request.url.path
        control.hits[path] += 1
        control.last_headers = dict(request.headers)
        if control.delay_s:
            await asyncio.sleep(control.delay_s)
        if control.hold is not None:
            await asyncio.to_thread(control.hold.wait, 60)
        if control.status >= 400:
            return JSONResponse({"error": "upstream failure"}, status_code=control.status)
        headers = {"Cache-Control": control.cache_control} if control.cache_control else {}
        body = {
            "parcel_id": request.path_params.get("parcel_id"),
            "n": control.hits[path],
            "query": str(request.url.query),
        }
        return JSONResponse(body, headers=headers)

    return Starlette(
        routes=[
            Route("/v1/properties/search", handle),
            Route("/v1/properties/{parcel_id}", handle),
            Route("/v1/properties/{parcel_id}/history", handle),
        ]
    )


class LocalUpstream:
    """Runs the upstream app on a free loopback port in a background thread."""

    def __init__(self) -> None:
        self.control = UpstreamControl()
        self.port = free_port()
        config = uvicorn.Config(
            _app(self.control),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            loop="asyncio",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until it accepts connections (bounded)."""
        self._thread.start()
        wait_until_sync(lambda: self._server.started, what="the local upstream starting")

    def stop(self) -> None:
        """Stop and join."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
