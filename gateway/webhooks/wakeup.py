"""Wake the delivery loop when an outbox row is inserted (PostgreSQL LISTEN/NOTIFY).

Migration `webhooks_0003` makes every insert into `job_events`, `parcel_changes` and
`webhook_deliveries` notify channel `gateway_webhooks` at commit. `OutboxListener` holds
one asyncpg connection of its own (outside the engine's pool: a LISTEN needs the same
session for as long as it listens, and a pooled connection is handed to others) and calls
`wake()` for every notification; the delivery loop turns many wakes into one step
(`PeriodicLoop`'s `wake` event is cleared when a step starts).

Nothing depends on a notification arriving: the loop still polls every
WEBHOOK_DISPATCH_INTERVAL_S. A notification sent while the connection is down is lost,
so the listener reconnects (backing off up to `RECONNECT_MAX_S`) and wakes the loop once
after every (re)connect, to pick up whatever it missed. A connection can also die without
telling (a partition drops packets): every `CHECK_S` the listener runs `SELECT 1` with a
deadline and reconnects if it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs installed
import structlog
from sqlalchemy.engine import URL

from gateway.kit.periodic import wait_any
from gateway.webhooks.repository.notify import CHANNEL

log = structlog.get_logger("gateway.webhooks.wakeup")

# Seconds between liveness checks of the LISTEN connection, and the deadline of each.
CHECK_S = 10.0
CHECK_TIMEOUT_S = 3.0
CONNECT_TIMEOUT_S = 3.0
# Reconnect delays double from the first up to the last.
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0
CLOSE_TIMEOUT_S = 2.0


def listen_dsn(url: URL) -> str:
    """The engine's URL as a plain libpq DSN for asyncpg (no `+asyncpg` driver name)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class OutboxListener:
    """One LISTEN connection that calls `wake` per notification; reconnects after loss."""

    def __init__(
        self,
        dsn: str,
        wake: Callable[[], None],
        *,
        connected: Callable[[bool], None] | None = None,
        check_s: float = CHECK_S,
    ) -> None:
        self._dsn = dsn
        self._wake = wake
        self._connected = connected or (lambda up: None)
        self._check_s = check_s
        self._closing = asyncio.Event()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        # Seen by tests: the backend pid of the current LISTEN session (None when down).
        self.server_pid: int | None = None

    def start(self) -> None:
        """Start listening in a task of the running loop."""
        if self._task is not None:
            raise RuntimeError("outbox listener already started")
        self._task = asyncio.create_task(self._run(), name="webhooks-listener")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        self._closing.set()
        task, self._task = self._task, None
        if task is not None:
            _, pending = await asyncio.wait([task], timeout=CLOSE_TIMEOUT_S + 1)
            if pending:
                task.cancel()
                await asyncio.wait([task])
        await self._close()

    async def _run(self) -> None:
        delay = RECONNECT_MIN_S
        while not self._closing.is_set():
            try:
                await self._connect()
            except Exception as exc:  # down or refusing: try again later, the poll covers
                log.warning("webhook_listener_connect_failed", error=type(exc).__name__)
                await self._close()
                await wait_any([self._closing], delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            delay = RECONNECT_MIN_S
            self._connected(True)
            # Whatever was inserted while nobody listened is found by this step.
            self._wake()
            await self._watch()
            self._connected(False)
            await self._close()
            if not self._closing.is_set():
                log.warning("webhook_listener_lost")

    async def _connect(self) -> None:
        self._lost.clear()
        conn = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT_S)
        self._conn = conn
        conn.add_termination_listener(lambda _conn: self._lost.set())
        await conn.add_listener(CHANNEL, self._notified)
        self.server_pid = conn.get_server_pid()

    async def _watch(self) -> None:
        """Return when the connection is lost (or found dead) or the listener stops."""
        while not self._closing.is_set():
            await wait_any([self._closing, self._lost], self._check_s)
            if self._closing.is_set() or self._lost.is_set():
                return
            try:
                await self._conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT_S)
            except Exception as exc:
                log.warning("webhook_listener_check_failed", error=type(exc).__name__)
                return

    def _notified(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        self._wake()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        self.server_pid = None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            await conn.close(timeout=CLOSE_TIMEOUT_S)
        if not conn.is_closed():
            conn.terminate()
