"""`GET /v1/jobs/{id}/events` served in front of FastAPI: a stream lives for minutes.

A route's request stays on FastAPI's and Starlette's stack for as long as its response
runs: the routing closures, three `AsyncExitStack`s, the exception-handler wrappers and
their frames, about 12 KB per request (measured with tracemalloc, `bench/README.md`,
"Live streams"). That is nothing for an answer of milliseconds and most of the memory of
an SSE stream held open for an hour, so this layer answers the stream route itself, as
the request-context layer answers `/health`: the same `open_job_stream` the FastAPI route
calls, behind the same request context (request id, access log, metrics under the route
template, security and rate-limit headers) and CORS. Anything it does not recognise
(another path, a malformed job id, another method) goes on to FastAPI, whose route also
documents the endpoint and serves it with `FASTPATH=off`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.external.public_deps import public_plane_of
from gateway.api.external.streams import TICKET_MAX_CHARS, open_job_stream, streams_plane_of
from gateway.api.problems import send_problem
from gateway.core.errors import GatewayError
from gateway.kit.field_errors import invalid_field

_PATH = re.compile(r"/v1/jobs/(job_[0-9a-f]{24})/events")
_EVENT_ID_MAX_CHARS = 32


class EventStreamFront:
    """ASGI layer serving the SSE route (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, route: APIRoute) -> None:
        self.app = app
        # Reported as the matched route, so logs and metrics name the template.
        self.route = route

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function returning a coroutine: every other public request passes
        # through this layer, and gets no extra coroutine frame from it.
        match = _PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "GET":
            return self.app(scope, receive, send)
        return self._serve(scope, receive, send, match.group(1))

    async def _serve(self, scope: Scope, receive: Receive, send: Send, job_id: str) -> None:
        scope["route"] = self.route
        try:
            ticket, query_id = _query(scope["query_string"])
            header_id = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k == b"last-event-id"), None
            )
            app = scope["app"]
            response = await open_job_stream(
                scope,
                public_plane_of(app),
                streams_plane_of(app),
                job_id,
                ticket=ticket,
                header_id=header_id,
                query_id=query_id,
            )
        except GatewayError as exc:
            request_id = scope.get("state", {}).get("request_id")
            await send_problem(send, exc, instance=scope["path"], request_id=request_id)
            return
        await response(scope, receive, send)


def _query(query_string: bytes) -> tuple[str | None, str | None]:
    """`ticket` and `last_event_id` from the query (the first of each), bounded."""
    ticket = event_id = None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name == "ticket" and ticket is None:
            if len(value) > TICKET_MAX_CHARS:
                raise invalid_field("query", "ticket", msg="too long to be a stream ticket")
            ticket = value
        elif name == "last_event_id" and event_id is None:
            if len(value) > _EVENT_ID_MAX_CHARS:
                raise invalid_field("query", "last_event_id", msg="too long to be an event id")
            event_id = value
    return ticket, event_id
