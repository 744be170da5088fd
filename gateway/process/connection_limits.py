"""Bounds on what one client connection may hold: time, write buffer, a place at all.

uvicorn closes a connection only when it has been idle between two requests for
`timeout_keep_alive`. A connection that never sends a byte, a client dribbling its
headers or body one byte at a time, and a client that stops reading its answer (whose
response then sits in the transport's write buffer) all stayed open indefinitely, and
nothing capped how many connections one port accepts. `BoundedConnection`, mixed in
front of the port's httptools protocol (the fast path's or uvicorn's own, so the bounds
hold with `FASTPATH=off` too), adds:

* a head deadline (`HTTP_HEAD_TIMEOUT_S`) from a connection's opening, and from each
  request's first byte, to the end of its headers;
* a body deadline: `HTTP_BODY_TIMEOUT_S` plus one second per `HTTP_BODY_MIN_RATE` bytes
  received, so a large body arriving at a reasonable pace is never cut and a trickle
  is; its clock stops while reading is paused, since then the app is not reading;
* a per-connection write buffer limit (`HTTP_WRITE_BUFFER_BYTES`, through
  `transport.set_write_buffer_limits`; uvicorn's flow control makes a streamed response
  wait while the buffer is above it), and a write-stall deadline: a buffer above the
  limit that does not shrink for `HTTP_WRITE_STALL_TIMEOUT_S` means the client stopped
  reading, and the connection is aborted (a plain close would wait for the buffer to
  drain, which is the thing that never happens), freeing the answer it pinned;
* a connection cap per port (`MAX_CONNECTIONS_PER_PORT`): a connection beyond it is
  answered `503` problem+json (`Retry-After`, `Connection: close`) once its request head
  arrived, instead of the process running out of file descriptors. uvicorn's
  `limit_concurrency` also counts running tasks and answers 503 `text/plain`.

Deadlines are checked by one `DeadlineSweep` per server, a timer that visits every
connection a few times per timeout (at most once a second), as Kestrel's heartbeat does.
A request costs two float stores (the head and body deadlines) and no timer of its own;
a body chunk one addition. Deadlines are therefore honoured to within one sweep
interval, which is all a bound of seconds needs.

Hooks on uvicorn: the parser callbacks `on_message_begin`, `on_headers_complete` and
`on_body`, the protocol's `app`, `flow`, `cycle` and `connections` attributes, and the
cycle's `more_body` (contract tests in `tests/fastpath/test_private_apis.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from typing import ClassVar

import structlog
from prometheus_client import CollectorRegistry, Counter
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.api.problems import send_problem
from gateway.core.errors import ServiceUnavailable
from gateway.core.settings.connections import ConnectionSettings
from gateway.kit.memo import PerOwner

log = structlog.get_logger("gateway.connections")

_HEAD, _BODY, _IDLE = "head", "body", "idle"
# Sweeps per timeout, and the bounds of the sweep interval.
_SWEEPS_PER_TIMEOUT = 4
_MAX_SWEEP_S = 1.0
_MIN_SWEEP_S = 0.05
# At most one `connection_limit_reached` warning per port this often.
_LIMIT_WARNING_EVERY_S = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    """The bounds of one port's connections (see the module docstring)."""

    head_timeout_s: float
    body_timeout_s: float
    body_min_rate: int
    write_buffer_bytes: int
    write_stall_timeout_s: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: ConnectionSettings) -> ConnectionLimits:
        """The limits the settings name."""
        return cls(
            head_timeout_s=settings.http_head_timeout_s,
            body_timeout_s=settings.http_body_timeout_s,
            body_min_rate=settings.http_body_min_rate,
            write_buffer_bytes=settings.http_write_buffer_bytes,
            write_stall_timeout_s=settings.http_write_stall_timeout_s,
            max_connections=settings.max_connections_per_port,
        )

    @classmethod
    def defaults(cls) -> ConnectionLimits:
        """The settings' defaults, without reading the environment."""
        return cls.from_settings(ConnectionSettings.model_construct())

    @property
    def sweep_interval_s(self) -> float:
        """How often the deadlines are checked."""
        shortest = min(self.head_timeout_s, self.body_timeout_s, self.write_stall_timeout_s)
        return min(_MAX_SWEEP_S, max(_MIN_SWEEP_S, shortest / _SWEEPS_PER_TIMEOUT))


_OVER_CAPACITY = ServiceUnavailable(
    "This port is at its connection limit; retry shortly",
    headers={"Retry-After": "1", "Connection": "close"},
)


async def _over_capacity(scope: Scope, _receive: Receive, send: Send) -> None:
    """The app of a connection beyond the cap: one 503, then the connection closes."""
    await send_problem(send, _OVER_CAPACITY, instance=scope["path"], request_id=None)


# Why a connection was cut; every reason is exported at 0 from the start.
CUT_REASONS = ("head_timeout", "body_timeout", "write_stalled", "over_capacity")


def _cut_counter(registry: CollectorRegistry) -> Counter:
    counter = Counter(
        "gateway_connections_cut",
        "Client connections cut by a bound: head/body deadline, stalled write, or over "
        "MAX_CONNECTIONS_PER_PORT (answered 503).",
        ["reason"],
        registry=registry,
    )
    for reason in CUT_REASONS:
        counter.labels(reason)
    return counter


# One counter per registry (a port's), however often its server is built.
connection_cuts: PerOwner[CollectorRegistry, Counter] = PerOwner(_cut_counter)


class _PortState:
    """What the connections of one port share beyond uvicorn's own server state."""

    def __init__(self, cuts: Counter | None) -> None:
        self.warned_at = -_LIMIT_WARNING_EVERY_S
        self.cuts = cuts

    def cut(self, reason: str) -> None:
        """Count one connection cut for `reason`."""
        if self.cuts is not None:
            self.cuts.labels(reason).inc()


class BoundedConnection(HttpToolsProtocol):
    """Mixed in front of an httptools protocol class by `bounded_protocol`."""

    limits: ClassVar[ConnectionLimits]
    port_state: ClassVar[_PortState]

    _phase: str
    _deadline: float
    _stalled_since: float | None
    _stalled_size: int

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        limits = self.limits
        transport.set_write_buffer_limits(high=limits.write_buffer_bytes)
        now = self.loop.time()
        self._phase = _HEAD
        self._deadline = now + limits.head_timeout_s
        self._stalled_since = None
        self._stalled_size = 0
        if len(self.connections) > limits.max_connections:
            # Answered after its head (a response before the request was read could be
            # lost to the reset its unread bytes cause), by an app that only says 503.
            self.app = _over_capacity
            state = self.port_state
            state.cut("over_capacity")
            if now - state.warned_at >= _LIMIT_WARNING_EVERY_S:
                state.warned_at = now
                log.warning(
                    "connection_limit_reached",
                    limit=limits.max_connections,
                    port=self.server[1] if self.server else None,
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD
        self._deadline = self.loop.time() + self.limits.head_timeout_s

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._phase = _BODY
        self._deadline = self.loop.time() + self.limits.body_timeout_s

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._deadline += len(body) / self.limits.body_min_rate

    def check_deadlines(self, now: float, elapsed: float) -> None:
        """Cut the connection if a deadline passed; called by the sweep."""
        transport = self.transport
        if self.flow.write_paused:
            size = transport.get_write_buffer_size()
            if self._stalled_since is None or size < self._stalled_size:
                self._stalled_since, self._stalled_size = now, size
            elif now - self._stalled_since > self.limits.write_stall_timeout_s:
                log.info("connection_cut", reason="write_stalled", buffered_bytes=size)
                self.port_state.cut("write_stalled")
                transport.abort()
                return
        else:
            self._stalled_since = None
        if transport.is_closing():
            return
        if self.flow.read_paused:
            # The app (or a pipelined request) holds reading: not the client's time.
            self._deadline += elapsed
            return
        phase = self._phase
        if phase == _BODY:
            cycle = self.cycle
            if cycle is None or not cycle.more_body:
                self._phase = _IDLE  # the whole request arrived
                return
        elif phase == _IDLE:
            return
        if now > self._deadline:
            log.info("connection_cut", reason=f"{phase}_timeout")
            self.port_state.cut(f"{phase}_timeout")
            transport.close()


def bounded_protocol(
    base: type[HttpToolsProtocol],
    limits: ConnectionLimits,
    registry: CollectorRegistry | None = None,
) -> type[BoundedConnection]:
    """`base` with the connection bounds in front of it, for one port; cuts are counted in
    `registry` (the port's) when given."""
    cuts = None if registry is None else connection_cuts(registry)
    return type(
        f"Bounded{base.__name__}",
        (BoundedConnection, base),
        {"limits": limits, "port_state": _PortState(cuts)},
    )


class DeadlineSweep:
    """One timer per server that checks every connection's deadlines."""

    def __init__(
        self,
        connections: Collection[object],
        interval_s: float,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._connections = connections
        self._interval_s = interval_s
        self._loop = loop
        self._last = loop.time()
        self._handle = loop.call_later(interval_s, self._tick)

    def _tick(self) -> None:
        now = self._loop.time()
        elapsed, self._last = now - self._last, now
        try:
            for connection in list(self._connections):
                if isinstance(connection, BoundedConnection):
                    connection.check_deadlines(now, elapsed)
        finally:
            self._handle = self._loop.call_later(self._interval_s, self._tick)

    def stop(self) -> None:
        """No more sweeps."""
        self._handle.cancel()
