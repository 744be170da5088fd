"""The JSON text messages of `WS /v1/ws`: what a client may send, what the server sends.

Besides jobs, a socket can follow its caller's parcel watches: `{"type": "subscribe",
"watches": true}` (and `unsubscribe` the same way) sends every `parcel.changed` of the
caller's watches from then on.

Client messages are parsed here, strictly (an unknown type, a job id that is not one,
a resume point that is not one of our event ids is a `BadMessage`, close code 4400);
unknown extra fields are ignored, so clients can send fields a later version reads.
Server messages are written as text directly: an event's data is the published event
JSON, passed through as is rather than parsed and dumped again for every follower.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import BadRequest
from gateway.streams.follow import Frame
from gateway.streams.outbox import FeedEntry

_JOB_ID = re.compile(r"job_[0-9a-f]{24}")
# Our event ids are job sequence numbers (as `Last-Event-ID` on the SSE route).
_MAX_EVENT_ID_DIGITS = 18
_MISSING = object()

HEARTBEAT = '{"type":"heartbeat"}'


class BadMessage(BadRequest):
    """A client message the server cannot act on (close code 4400)."""

    slug = "bad-websocket-message"
    title = "Bad WebSocket message"


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Follow `job_id`, from after `last_event_id` when given (a resume)."""

    job_id: str
    last_event_id: int | None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Stop following `job_id`."""

    job_id: str


@dataclass(frozen=True, slots=True)
class Ping:
    """An application-level ping; `id` (any JSON, optional) is echoed in the pong."""

    id: Any = _MISSING


@dataclass(frozen=True, slots=True)
class SubscribeWatches:
    """Receive `parcel.changed` for every watch of the caller, from now on."""


@dataclass(frozen=True, slots=True)
class UnsubscribeWatches:
    """Stop receiving `parcel.changed`."""


ClientMessage = Subscribe | Unsubscribe | SubscribeWatches | UnsubscribeWatches | Ping


def parse_client_message(text: str | None) -> ClientMessage:
    """One client message (`text` is None for a binary message); `BadMessage` if bad."""
    if text is None:
        raise BadMessage("Messages are JSON text, not binary")
    try:
        # NaN and Infinity are not JSON: refused, so a pong never echoes invalid JSON.
        body = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise BadMessage("A message must be one JSON object") from exc
    if not isinstance(body, dict):
        raise BadMessage("A message must be one JSON object")
    kind = body.get("type")
    watches = _watches(body)
    if kind == "subscribe":
        if watches:
            return SubscribeWatches()
        return Subscribe(_job_id(body), _event_id(body.get("last_event_id")))
    if kind == "unsubscribe":
        return UnsubscribeWatches() if watches else Unsubscribe(_job_id(body))
    if kind == "ping":
        return Ping(body.get("id", _MISSING))
    shown = kind if isinstance(kind, str) else type(kind).__name__
    raise BadMessage(f"Unknown message type {shown[:40]!r}: subscribe, unsubscribe or ping")


def subscribed(job_id: str) -> str:
    """The answer to a subscribe (also to one for a job already followed)."""
    return f'{{"type":"subscribed","job_id":"{job_id}"}}'


def unsubscribed(job_id: str, reason: str) -> str:
    """A subscription ended: `finished` (terminal event sent) or `requested`."""
    return f'{{"type":"unsubscribed","job_id":"{job_id}","reason":"{reason}"}}'


def pong(ping: Ping) -> str:
    """The answer to `ping`, with its id when it had one."""
    if ping.id is _MISSING:
        return '{"type":"pong"}'
    return json.dumps({"type": "pong", "id": ping.id}, separators=(",", ":"))


def event_message(frame: Frame) -> str:
    """One frame of a followed job; `id` is what `last_event_id` takes to resume."""
    # The job id matched `_JOB_ID`, the type is one of ours, the body is JSON already.
    return (
        f'{{"type":"event","job_id":"{frame.job_id}","id":"{frame.seq}",'
        f'"event":"{frame.type}","data":{frame.body.decode()}}}'
    )


def watches_subscribed() -> str:
    """The answer to a watches subscribe (also to a repeated one)."""
    return '{"type":"subscribed","watches":true}'


def watches_unsubscribed() -> str:
    """The answer to a watches unsubscribe."""
    return '{"type":"unsubscribed","watches":true,"reason":"requested"}'


def change_message(change: FeedEntry) -> str:
    """A `parcel.changed` of one of the caller's watches; `id` is the change's (`pc_<n>`),
    which `GET /v1/watches/{id}/changes` lists too."""
    # The body is the published change JSON; its id is ours (pc_ and digits).
    change_id = json.loads(change.body)["id"]
    return (
        f'{{"type":"event","event":"{change.type}","id":"{change_id}",'
        f'"data":{change.body.decode()}}}'
    )


def _watches(body: dict[str, Any]) -> bool:
    value = body.get("watches", False)
    if not isinstance(value, bool):
        raise BadMessage("watches must be true or false")
    return value


def _job_id(body: dict[str, Any]) -> str:
    job_id = body.get("job_id")
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise BadMessage("job_id must be a job id (job_ followed by 24 hex digits)")
    return job_id


def _event_id(value: Any) -> int | None:
    """A resume point: the `id` of an event this connection (or an SSE stream) sent."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        text = str(value)
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        text = value
    else:
        raise BadMessage("last_event_id must be the id of an event this stream sent")
    if len(text) > _MAX_EVENT_ID_DIGITS:
        raise BadMessage("last_event_id must be the id of an event this stream sent")
    return int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
