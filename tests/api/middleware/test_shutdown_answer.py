"""A request task cancelled by shutdown is answered a 503 problem; a stray cancel is not."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import CollectorRegistry
from starlette.types import Message, Receive, Scope, Send

from gateway.api.middleware.request_context import RequestContextMiddleware
from gateway.core.audience import Audience
from gateway.core.observability.http_metrics import HttpMetrics

_SCOPE: Scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}


def _middleware(app: object) -> RequestContextMiddleware:
    return RequestContextMiddleware(
        app,  # type: ignore[arg-type]
        audience=Audience.PUBLIC,
        max_body_bytes=1024,
        metrics=HttpMetrics(CollectorRegistry()),
    )


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def test_a_request_cancelled_while_waiting_on_nothing_known_says_shutting_down() -> None:
    started = asyncio.Event()

    async def waits(_scope: Scope, _receive: Receive, _send: Send) -> None:
        started.set()
        await asyncio.Event().wait()

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    task = asyncio.create_task(_middleware(waits)(dict(_SCOPE), _receive, send))
    await started.wait()
    task.cancel()
    await task  # consumed: the task ends normally, as uvicorn then sees it
    assert not task.cancelled()
    assert sent[0]["status"] == 503
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"retry-after"] == b"1"
    assert json.loads(sent[1]["body"])["dependency"] == "shutting down"


async def test_a_cancelled_error_the_task_did_not_receive_stays_loud() -> None:
    async def leaks(_scope: Scope, _receive: Receive, _send: Send) -> None:
        raise asyncio.CancelledError

    async def send(_message: Message) -> None:
        raise AssertionError("nothing is answered")

    with pytest.raises(asyncio.CancelledError):
        await _middleware(leaks)(dict(_SCOPE), _receive, send)
