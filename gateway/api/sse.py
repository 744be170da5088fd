"""Server-Sent Events framing of a stream connection (the WHATWG `text/event-stream`).

Each frame is `id: <seq>` (the job's event sequence: what `Last-Event-ID` sends back
on a reconnect), `event: <type>` and one `data:` line of JSON. The stream opens with a
`retry:` hint, sends a `: keep-alive` comment on every heartbeat, and ends after the
job's terminal event. When the process stops, it sends a last `shutdown` event without
an id (the client's last id stays the one to resume from) and a `retry:` hint, then
ends; EventSource reconnects by itself.

Written as a plain ASGI response rather than with `sse-starlette`: that package runs
four tasks per connection (stream, ping, disconnect, exit signal) and detects shutdown
by patching uvicorn's signal handler, which this process does not use. Here a stream is
the request's own task plus one waiting for the disconnect; heartbeats and shutdown
come from the process's hub (`gateway/streams/hub.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.api.middleware.request_context import LONG_LIVED_STATE
from gateway.streams.connection import StreamConnection
from gateway.streams.follow import Frame
from gateway.streams.outbox import CloseReason

KEEP_ALIVE = b": keep-alive\n\n"
SHUTDOWN_DATA = b'{"reason":"shutdown","detail":"The server is restarting: reconnect to resume"}'


def frame_bytes(frames: Iterable[Frame]) -> bytes:
    """The frames as `text/event-stream` events."""
    return b"".join(
        b"id: %d\nevent: %s\ndata: %s\n\n" % (f.seq, f.type.encode(), f.body) for f in frames
    )


class EventStreamResponse(Response):
    """Streams one connection's frames until its job finishes or it must stop."""

    media_type = "text/event-stream"

    def __init__(
        self,
        connection: StreamConnection,
        first: list[Frame],
        *,
        retry_ms: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            status_code=200,
            headers={
                "Cache-Control": "no-store",
                # nginx and other buffering proxies must pass events through at once.
                "X-Accel-Buffering": "no",
                **(headers or {}),
            },
        )
        # A stream has no length: drop the `content-length: 0` Response adds for no body.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.connection = connection
        self.first = first
        self.retry_ms = retry_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = self.connection
        reason = CloseReason.DONE
        watcher = asyncio.ensure_future(_watch_disconnect(receive, conn))
        scope.setdefault("state", {})[LONG_LIVED_STATE] = True
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            # Not kept for the stream's life: a snapshot is the whole job.
            first, self.first = self.first, []
            head = b"retry: %d\n\n" % self.retry_ms
            await send(
                {"type": "http.response.body", "body": head + frame_bytes(first), "more_body": True}
            )
            conn.sent(first, time.time())
            del first
            # Also when a resume found the client already had the terminal event.
            finished = all(conn.finished(job_id) for job_id in conn.followers)
            while not finished:
                wakeup = await conn.wait()
                if wakeup.closed is not None:
                    reason = wakeup.closed
                    if reason is CloseReason.SHUTDOWN:
                        body = b"event: shutdown\nretry: %d\ndata: %s\n\n" % (
                            self.retry_ms,
                            SHUTDOWN_DATA,
                        )
                        await send({"type": "http.response.body", "body": body, "more_body": True})
                    break
                chunk = frame_bytes(wakeup.frames)
                if wakeup.heartbeat and not chunk:
                    chunk = KEEP_ALIVE
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    conn.sent(wakeup.frames, time.time())
                finished = bool(wakeup.finished)
            if reason is not CloseReason.DISCONNECTED:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except BaseException:
            # Cancelled at the end of a shutdown's grace period, or the transport failed:
            # not a finished stream.
            if reason is CloseReason.DONE:
                reason = CloseReason.DISCONNECTED
            raise
        finally:
            watcher.cancel()
            ending = {
                CloseReason.DONE: "finished",
                CloseReason.DISCONNECTED: "client",
                CloseReason.SLOW: "slow",
                CloseReason.SHUTDOWN: "shutdown",
            }[reason]
            await conn.close(ending)


async def _watch_disconnect(receive: Receive, conn: StreamConnection) -> None:
    """Close the connection's outbox when the client goes away."""
    with contextlib.suppress(Exception):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                conn.outbox.close(CloseReason.DISCONNECTED)
                return
