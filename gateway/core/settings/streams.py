"""Settings of live streams: Server-Sent Events, the WebSocket, stream tickets.

A mixin of `gateway.core.settings.Settings`; environment names stay flat
(`SSE_HEARTBEAT_S`, `SSE_MAX_PER_JOB`, `WS_MAX_SUBSCRIPTIONS`, `STREAM_TICKET_KEYS`...).

A "follower" is one SSE stream of a job or one WebSocket subscription to a job:
`SSE_MAX_PER_JOB` caps followers of one job, across every replica. `SSE_MAX_PER_PRINCIPAL`
caps what one caller holds open: its SSE streams plus its WebSocket connections (each
of which may hold up to `WS_MAX_SUBSCRIPTIONS` subscriptions).

`STREAM_TICKET_KEYS` has the shape of `DOWNLOAD_SIGNING_KEYS` (comma-separated
`kid:secret`, newest first, the first signs, all verify); without it development and
test sign with a public development key and production refuses to issue tickets.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from gateway.core.settings.signing_keys import check_signing_keys, parse_signing_keys


class StreamSettings(BaseSettings):
    """Live streams; see the "Live streams" section of the README."""

    # A keep-alive comment on every open SSE stream (and an app-level heartbeat on every
    # WebSocket) this often, so proxies and load balancers keep idle streams open.
    sse_heartbeat_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    # The `retry:` hint (milliseconds) sent to SSE clients: how long EventSource waits
    # before reconnecting, also after the server's shutdown event.
    sse_retry_ms: Annotated[int, Field(ge=100, le=600_000)] = 2000
    # Followers (SSE streams or WebSocket subscriptions) of one job, across replicas.
    sse_max_per_job: Annotated[int, Field(ge=1, le=100_000)] = 10
    # SSE streams plus WebSocket connections one caller holds open, across replicas.
    sse_max_per_principal: Annotated[int, Field(ge=1, le=100_000)] = 50
    # Events queued for one connection that has not sent them yet. A client that falls
    # this far behind (it stopped reading) is disconnected: memory never grows with a
    # slow client's backlog, and it resumes from its last id when it reconnects.
    stream_buffer_events: Annotated[int, Field(ge=4, le=100_000)] = 256
    # Jobs one WebSocket connection may follow at once.
    ws_max_subscriptions: Annotated[int, Field(ge=1, le=10_000)] = 100
    # WebSocket protocol pings (uvicorn): a peer that does not answer within the same
    # time is closed.
    ws_ping_interval_s: Annotated[float, Field(gt=0, le=600)] = 20.0
    # Largest message a WebSocket client may send (subscribe/unsubscribe/ping are tiny).
    ws_max_message_bytes: Annotated[int, Field(ge=256, le=1_048_576)] = 16_384
    # Stream tickets (`POST /v1/stream-tickets`): lifetime, and their signing keys.
    stream_ticket_ttl_s: Annotated[int, Field(ge=5, le=3600)] = 60
    stream_ticket_keys: Annotated[list[tuple[str, SecretStr]], NoDecode] = Field(
        default_factory=list
    )

    @field_validator("stream_ticket_keys", mode="before")
    @classmethod
    def _parse_ticket_keys(cls, value: object) -> object:
        return parse_signing_keys("STREAM_TICKET_KEYS", value)

    @model_validator(mode="after")
    def _check_ticket_keys(self) -> Self:
        check_signing_keys("STREAM_TICKET_KEYS", self.stream_ticket_keys)
        return self
