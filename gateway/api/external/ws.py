"""`WS /v1/ws`: follow many jobs over one WebSocket (protocol: `gateway/api/ws_messages.py`).

One socket is one `StreamConnection` (`gateway/streams/connection.py`), the same as an
SSE stream: it holds one of the caller's open-stream places, and each subscription
holds a follower place of its job, so `SSE_MAX_PER_PRINCIPAL` and `SSE_MAX_PER_JOB`
count sockets and subscriptions alike. Each subscription's frames are the SSE stream's
(snapshot, replay or resync, then live events, same ids), and it ends by itself after
its job's terminal event while the socket stays open. A socket may also subscribe to
its caller's parcel watches (`parcel.changed`, live from the subscription on; no place
taken: it is one more address on the same connection).

The socket is accepted before anything is checked, so that a refusal reaches the
client as a close code (`CLOSE_CODES`) a browser can read, rather than a bare failed
handshake. Two tasks per socket: the route's, which reads client messages, and one
that sends what the hub delivers. A connection is used by one task at a time
(`StreamConnection`'s contract), so both take `_lock` around every use of it and every
send: a subscription's first frames are then always sent before its live ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from enum import IntEnum
from typing import Annotated

import structlog
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from gateway.api.external.stream_auth import StreamGrant, stream_grant
from gateway.api.permissions import declared
from gateway.api.ws_messages import (
    HEARTBEAT,
    ClientMessage,
    Ping,
    Subscribe,
    SubscribeWatches,
    Unsubscribe,
    UnsubscribeWatches,
    change_message,
    event_message,
    parse_client_message,
    pong,
    subscribed,
    unsubscribed,
    watches_subscribed,
    watches_unsubscribed,
)
from gateway.core.errors import (
    BadRequest,
    Forbidden,
    GatewayError,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)
from gateway.public.permissions import MissingScope, Scope, needs
from gateway.public.plane import PublicPlane
from gateway.streams.connection import StreamConnection
from gateway.streams.follow import Frame
from gateway.streams.outbox import CloseReason, FeedEntry
from gateway.streams.plane import StreamsPlane

log = structlog.get_logger("gateway.streams.ws")

router = APIRouter(prefix="/v1", tags=["streams"])

# What opening a socket needs; `stream_grant` checks it (after the socket is accepted,
# so a refusal is a close code). Subscribing to parcel watches needs watches:read too.
SOCKET = needs(Scope.JOBS_READ)

# A close frame's reason is at most 123 bytes (RFC 6455 5.5: 125 with the code).
_MAX_REASON_BYTES = 123


class CloseCode(IntEnum):
    """Why the server closed a socket (4xxx: the HTTP status the refusal would have)."""

    NORMAL = 1000
    TRY_AGAIN = 1011  # a dependency is down: reconnect after a moment
    RESTART = 1012  # the process is stopping: reconnect, resubscribe with the last ids
    SLOW = 4008  # the client fell STREAM_BUFFER_EVENTS behind: reconnect and resume
    BAD_MESSAGE = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403  # not the caller's job, no such job (the same: no leak), or ticket
    TOO_MANY = 4429


# Every refusal's close code, by error class: the first entry the error is an instance
# of (so InvalidInput is a BadRequest, DependencyUnavailable a ServiceUnavailable).
CLOSE_CODES: tuple[tuple[type[GatewayError], CloseCode], ...] = (
    (Unauthorized, CloseCode.UNAUTHORIZED),
    (Forbidden, CloseCode.FORBIDDEN),
    (NotFound, CloseCode.FORBIDDEN),
    (TooManyRequests, CloseCode.TOO_MANY),
    (BadRequest, CloseCode.BAD_MESSAGE),
    (ServiceUnavailable, CloseCode.TRY_AGAIN),
)

# How the hub's reasons to stop a connection reach the client.
_CLOSED_BY_HUB = {
    CloseReason.SLOW: (CloseCode.SLOW, "Too slow: reconnect and resume from your last ids"),
    CloseReason.SHUTDOWN: (CloseCode.RESTART, "Server restarting: reconnect and resubscribe"),
}


class TooManySubscriptions(TooManyRequests):
    """The socket already follows `WS_MAX_SUBSCRIPTIONS` jobs."""

    slug = "too-many-subscriptions"
    title = "Too many subscriptions on one WebSocket"


def close_code(exc: GatewayError) -> CloseCode:
    """The close code of a refusal (`CLOSE_CODES`); anything else is a try-again."""
    for cls, code in CLOSE_CODES:
        if isinstance(exc, cls):
            return code
    return CloseCode.TRY_AGAIN


@router.websocket("/ws")
async def job_socket(websocket: WebSocket, _need: Annotated[None, declared(SOCKET)]) -> None:
    """Follow any number of the caller's jobs (up to WS_MAX_SUBSCRIPTIONS) at once.

    Credentials as headers, or `?ticket=` from POST /v1/stream-tickets (browsers).
    """
    planes = websocket.app.state.planes
    streams: StreamsPlane = planes[StreamsPlane.name]
    public: PublicPlane = planes[PublicPlane.name]
    await websocket.accept()
    ticket = websocket.query_params.get("ticket")
    try:
        # A refused ticket is counted there (an oversized one is malformed).
        grant = await stream_grant(websocket.scope, public, streams, ticket, kind="ws", need=SOCKET)
    except GatewayError as exc:
        # Forbidden here is an anonymous caller (jobs need an account): authenticate;
        # a missing scope is a refusal like any other.
        anonymous = isinstance(exc, Forbidden) and not isinstance(exc, MissingScope)
        code = CloseCode.UNAUTHORIZED if anonymous else close_code(exc)
        await _close(websocket, code, exc.detail)
        return
    except Exception:
        log.exception("ws_authentication_failed")
        await _close(websocket, CloseCode.TRY_AGAIN, "Try again")
        return
    connection = streams.connection("ws", grant.owner)
    try:
        await connection.open()
    except GatewayError as exc:
        await _close(websocket, close_code(exc), exc.detail)
        return
    session = SocketSession(
        websocket,
        connection,
        grant,
        max_subscriptions=streams.resources.settings.ws_max_subscriptions,
    )
    await session.run()


class SocketSession:
    """One accepted, authenticated socket and its connection, until either ends."""

    def __init__(
        self,
        websocket: WebSocket,
        connection: StreamConnection,
        grant: StreamGrant,
        *,
        max_subscriptions: int,
    ) -> None:
        self.websocket = websocket
        self.connection = connection
        self.grant = grant
        self.max_subscriptions = max_subscriptions
        self._lock = asyncio.Lock()
        self._closed = False
        # The `gateway_streams_ended_total` reason: the client's doing unless the hub's.
        self._ending = "client"

    async def run(self) -> None:
        """Serve the socket until the client leaves or the server closes it."""
        sender = asyncio.create_task(self._send_loop(), name="ws-send")
        try:
            await self._receive_loop()
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            await self.connection.close(self._ending)

    # -- client messages -------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while not self._closed:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                # Gone (or the answer to our close): nothing more can be sent.
                self._closed = True
                return
            try:
                parsed = parse_client_message(message.get("text"))
                async with self._lock:
                    if self._closed:
                        return
                    await self._handle(parsed)
            except GatewayError as exc:
                await self._close(close_code(exc), exc.detail)
            except WebSocketDisconnect:
                self._closed = True
            except Exception:
                log.exception("ws_message_failed")
                await self._close(CloseCode.TRY_AGAIN, "Try again")

    async def _handle(self, message: ClientMessage) -> None:
        if isinstance(message, Subscribe):
            await self._subscribe(message)
        elif isinstance(message, Unsubscribe):
            if message.job_id in self.connection.followers:
                await self.connection.unfollow(message.job_id)
            await self._send([unsubscribed(message.job_id, "requested")])
        elif isinstance(message, SubscribeWatches):
            if not self.grant.allows_watches():
                self.connection.metrics.refused.labels("ws", "ticket").inc()
                raise Forbidden(
                    "This credential may not follow watches (a ticket for some jobs only,"
                    " or no watches:read scope)"
                )
            await self.connection.follow_watches()
            await self._send([watches_subscribed()])
        elif isinstance(message, UnsubscribeWatches):
            self.connection.unfollow_watches()
            await self._send([watches_unsubscribed()])
        elif isinstance(message, Ping):
            await self._send([pong(message)])

    async def _subscribe(self, message: Subscribe) -> None:
        conn, job_id = self.connection, message.job_id
        if job_id in conn.followers:
            # Already followed: its frames keep coming once, however often it is asked.
            await self._send([subscribed(job_id)])
            return
        if not self.grant.allows(job_id):
            conn.metrics.refused.labels("ws", "ticket").inc()
            raise Forbidden(f"This stream ticket does not cover job {job_id}")
        if len(conn.followers) >= self.max_subscriptions:
            conn.metrics.refused.labels("ws", "too_many_subscriptions").inc()
            raise TooManySubscriptions(
                f"This socket already follows {self.max_subscriptions} jobs: unsubscribe one"
            )
        frames = await conn.follow(job_id, message.last_event_id, own_place=True)
        await self._send([subscribed(job_id), *map(event_message, frames)])
        conn.sent(frames, time.time())
        follower = conn.followers.get(job_id)
        if follower is not None and follower.finished:
            # A finished job (or a resume at its terminal event): nothing more will come.
            await self._finish([job_id])

    # -- what the hub delivers ---------------------------------------------------------

    async def _send_loop(self) -> None:
        conn = self.connection
        try:
            while True:
                # Waiting needs no lock (the hub only adds); using the connection does.
                await conn.outbox.wait()
                async with self._lock:
                    if self._closed:
                        return
                    wakeup = await conn.wait()
                    if wakeup.closed is not None:
                        await self._hub_closed(wakeup.closed)
                        return
                    await self._deliver(wakeup.frames, wakeup.changes, heartbeat=wakeup.heartbeat)
                    await self._finish(wakeup.finished)
        except GatewayError as exc:
            await self._close(close_code(exc), exc.detail)
        except WebSocketDisconnect:
            self._closed = True
        except Exception:
            log.exception("ws_send_failed")
            await self._close(CloseCode.TRY_AGAIN, "Try again")

    async def _deliver(
        self, frames: list[Frame], changes: list[FeedEntry], *, heartbeat: bool
    ) -> None:
        texts = [event_message(f) for f in frames]
        texts += [change_message(c) for c in changes]
        if heartbeat:
            texts.append(HEARTBEAT)
        await self._send(texts)
        now = time.time()
        self.connection.sent(frames, now)
        self.connection.sent(changes, now)

    async def _finish(self, job_ids: list[str]) -> None:
        """End the subscriptions whose terminal frame was just sent (the socket stays)."""
        for job_id in job_ids:
            await self.connection.unfollow(job_id)
        await self._send([unsubscribed(job_id, "finished") for job_id in job_ids])

    async def _hub_closed(self, reason: CloseReason) -> None:
        if reason is CloseReason.DISCONNECTED:
            self._closed = True
            return
        code, text = _CLOSED_BY_HUB.get(reason, (CloseCode.NORMAL, "Done"))
        self._ending = reason.value if reason in _CLOSED_BY_HUB else "client"
        await self._close_now(code, text)

    # -- the socket ------------------------------------------------------------------

    async def _send(self, texts: list[str]) -> None:
        for text in texts:
            if self._closed:
                return
            await self.websocket.send_text(text)

    async def _close(self, code: CloseCode, reason: str) -> None:
        """Close from outside the lock (it waits for a send in progress to finish)."""
        async with self._lock:
            await self._close_now(code, reason)

    async def _close_now(self, code: CloseCode, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ending == "client" and code is not CloseCode.NORMAL:
            # The server ended it: a refused message or subscription (4xxx), or a failure.
            self._ending = "refused" if code >= CloseCode.BAD_MESSAGE else "error"
        await _close(self.websocket, code, reason)


async def _close(websocket: WebSocket, code: CloseCode, reason: str) -> None:
    """Send a close frame (a client already gone is no error)."""
    encoded = reason.encode()[:_MAX_REASON_BYTES]
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.close(int(code), encoded.decode(errors="ignore"))
