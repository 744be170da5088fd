"""Live streams of job events: `GET /v1/jobs/{id}/events` (SSE) and stream tickets.

Thin: authentication is `stream_auth.py`, following is `gateway/streams/`, framing is
`gateway/api/sse.py`.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from gateway.api.deps import plane_of
from gateway.api.external.jobs import JobIdPath
from gateway.api.external.jobs_deps import OwnerDep
from gateway.api.external.public_deps import Caller, public_plane
from gateway.api.external.requires import requires
from gateway.api.external.stream_auth import stream_grant
from gateway.api.permissions import declared
from gateway.api.sse import EventStreamResponse
from gateway.core.errors import Forbidden
from gateway.kit.field_errors import invalid_field
from gateway.public.permissions import Scope, allows, needs
from gateway.public.plane import PublicPlane
from gateway.streams.plane import StreamsPlane
from gateway.streams.tickets import IssuedTicket

router = APIRouter(prefix="/v1", tags=["streams"])

# What following a job needs; `stream_grant` checks it (the route authenticates itself:
# headers or a ticket, in front of FastAPI too).
JOB_EVENTS = needs(Scope.JOBS_READ)

# Our event ids are job sequence numbers; anything else is not ours to resume from.
_MAX_EVENT_ID_DIGITS = 18
TICKET_MAX_CHARS = 2048
TicketQuery = Annotated[
    str | None,
    Query(
        max_length=TICKET_MAX_CHARS,
        description="A stream ticket from POST /v1/stream-tickets, for clients that "
        "cannot send headers (EventSource). Single use, short-lived.",
    ),
]


def streams_plane(request: Request) -> StreamsPlane:
    """The streams plane of this app."""
    plane: StreamsPlane = plane_of(request, StreamsPlane.name)
    return plane


def streams_plane_of(app: Any) -> StreamsPlane:
    """The streams plane of an app (for ASGI layers, which have no request)."""
    plane: StreamsPlane = app.state.planes[StreamsPlane.name]
    return plane


def parse_event_id(value: str | None, where: list[str]) -> int | None:
    """A `Last-Event-ID` as a sequence number (422 when it is not one of ours)."""
    if value is None or value == "":
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_EVENT_ID_DIGITS:
        raise invalid_field(*where, msg="must be the id of an event this stream sent")
    return int(text)


@router.get(
    "/jobs/{job_id}/events",
    summary="Follow a job live (Server-Sent Events)",
    response_class=EventStreamResponse,
    # Said, not inferred: FastAPI reads the default status from the response class's
    # `__init__`, which has none here, and /openapi.json failed with a 500.
    status_code=200,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "The event stream"},
        204: {"description": "Resumed after the job's terminal event: nothing will follow"},
    },
)
async def job_events(
    _need: Annotated[None, declared(JOB_EVENTS)],
    request: Request,
    job_id: JobIdPath,
    ticket: TicketQuery = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Resume after this event (EventSource sends it on reconnect)",
        ),
    ] = None,
    last_event_id_query: Annotated[
        str | None,
        Query(
            alias="last_event_id",
            max_length=32,
            description="The same as the header, for a page that restarts its stream",
        ),
    ] = None,
) -> Response:
    """First the job's full state (`snapshot`), or after a reconnect the events missed
    (or `resync`), then every event as it happens; ends after the terminal event. A
    reconnect after the terminal event is answered 204.

    Served by `EventStreamFront` in front of FastAPI (this route is what `FASTPATH=off`
    serves and what the OpenAPI document shows); both call `open_job_stream`.
    """
    return await open_job_stream(
        request.scope,
        public_plane(request),
        streams_plane(request),
        job_id,
        ticket=ticket,
        header_id=last_event_id,
        query_id=last_event_id_query,
    )


async def open_job_stream(
    scope: MutableMapping[str, Any],
    public: PublicPlane,
    streams: StreamsPlane,
    job_id: str,
    *,
    ticket: str | None,
    header_id: str | None,
    query_id: str | None,
) -> Response:
    """Authenticate, take the places, start following: the response that streams."""
    grant = await stream_grant(scope, public, streams, ticket, need=JOB_EVENTS)
    if header_id is not None:
        resume = parse_event_id(header_id, ["header", "Last-Event-ID"])
    else:
        resume = parse_event_id(query_id, ["query", "last_event_id"])
    if not grant.allows(job_id):
        raise Forbidden(f"This stream ticket does not cover job {job_id}: ask for one that does")
    connection = streams.connection("sse", grant.owner)
    await connection.open(job_id=job_id)
    try:
        first = await connection.follow(job_id, resume)
    except BaseException:
        # Not the caller's job (404), or Redis/PostgreSQL down (503): never streamed.
        await connection.close("refused")
        raise
    if not first and connection.followers[job_id].finished:
        # Resumed at the terminal event: nothing will ever follow. A stream that ended
        # here would make EventSource reconnect every `retry` forever; a 204 is what
        # stops it (WHATWG: a 204 fails the connection for good).
        await connection.close("finished")
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    return EventStreamResponse(
        connection,
        first,
        retry_ms=streams.resources.settings.sse_retry_ms,
    )


def event_stream_route() -> APIRoute:
    """The SSE route (its template names the stream in logs and metrics)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.path == "/v1/jobs/{job_id}/events":
            return route
    raise LookupError("the event stream route is not on the router")


class TicketIn(BaseModel):
    """What a ticket may watch: some of the caller's jobs, or all of them when omitted."""

    job_ids: list[Annotated[str, Field(pattern=r"^job_[0-9a-f]{24}$")]] | None = Field(
        default=None, max_length=100
    )


@router.post(
    "/stream-tickets",
    status_code=201,
    summary="A single-use ticket to open a stream without headers (browsers)",
)
async def create_stream_ticket(
    caller: Annotated[Caller, requires(Scope.JOBS_READ)],
    request: Request,
    owner: OwnerDep,
    body: Annotated[TicketIn | None, Body()] = None,
) -> IssuedTicket:
    """Valid for STREAM_TICKET_TTL_S (60 s), once, for the caller's jobs (all, or those
    listed), on `GET /v1/jobs/{id}/events?ticket=` and `/v1/ws?ticket=` only."""
    streams = streams_plane(request)
    return await streams.tickets.issue(
        owner,
        None if body is None else body.job_ids,
        watches=allows(caller.principal, Scope.WATCHES_READ),
    )
