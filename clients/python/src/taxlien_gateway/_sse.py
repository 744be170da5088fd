"""Server-Sent Events: the `text/event-stream` parser and the follower's bookkeeping.

The parser follows the WHATWG EventSource rules the gateway's streams are written for
(`event:`, `data:` lines joined by newlines, `id:`, `retry:`, `:` comments, a blank line
dispatches). `FollowState` is what a job follower remembers across connections: the last
event id (sent back as `Last-Event-ID`, so a reconnect gets exactly the missed events),
the server's `retry:` hint, and whether the terminal event arrived. Both clients drive
it; only their I/O differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taxlien_gateway.models import FollowEvent, Job, JobEvent, JobSnapshot

# Bound on one event's data (the gateway's largest is a job snapshot, well under this):
# a stream that never sends a blank line cannot grow the buffer without limit.
MAX_EVENT_BYTES = 1 << 20


@dataclass(frozen=True)
class SseMessage:
    """One dispatched event: its type (`message` if unnamed), data and id."""

    event: str
    data: str
    id: str | None


@dataclass
class SseParser:
    """Feed it lines (without their line ending); it returns each completed event."""

    retry_ms: int | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _size: int = 0
    _id: str | None = None

    def feed(self, line: str) -> SseMessage | None:
        """Take one line; the event it completes, if any."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the gateway's keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._size += len(value) + 1
            if self._size > MAX_EVENT_BYTES:
                raise ValueError("an event stream sent an event over the size bound")
            self._data.append(value)
        elif name == "id" and "\x00" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def reset(self) -> None:
        """Drop a half-received event (a new connection starts clean; `retry_ms` stays)."""
        self._event, self._data, self._size, self._id = "", [], 0, None

    def _dispatch(self) -> SseMessage | None:
        message = None
        if self._data:
            message = SseMessage(self._event or "message", "\n".join(self._data), self._id)
        self.reset()
        return message


@dataclass
class FollowState:
    """What a job follower carries from one connection to the next."""

    last_event_id: str | None = None
    done: bool = False
    parser: SseParser = field(default_factory=SseParser)
    failures: int = 0  # connections in a row that brought no event

    def reconnect_delay_s(self) -> float:
        """How long to wait before the next connection: the server's `retry:` hint (else
        1 s), doubled per fruitless connection in a row, at most 30 s."""
        base = self.parser.retry_ms / 1000 if self.parser.retry_ms is not None else 1.0
        return float(min(30.0, base * 2 ** max(0, self.failures - 1)))

    def headers(self) -> dict[str, str]:
        """Headers of the next connection (`Last-Event-ID` once an event was seen)."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def accept(self, message: SseMessage) -> FollowEvent | None:
        """The typed event of a message (None for `shutdown` and unknown kinds)."""
        if message.id is not None:
            self.last_event_id = message.id
        self.failures = 0
        if message.event in ("snapshot", "resync"):
            job = Job.model_validate_json(message.data)
            self.done = job.finished  # a finished job's stream ends after its snapshot
            seq = int(message.id) if message.id and message.id.isdigit() else 0
            return JobSnapshot(kind=message.event, seq=seq, job=job)
        if message.event.startswith("job."):
            event = JobEvent.model_validate_json(message.data)
            self.done = event.terminal
            return event
        return None  # `shutdown` (reconnect after its retry hint) or a kind added later
