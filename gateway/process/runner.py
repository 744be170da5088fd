"""Run several uvicorn servers on one event loop and stop them together.

uvicorn's `Server.serve()` captures SIGINT/SIGTERM for itself and re-raises the signal
when it returns. With several servers under `asyncio.gather`, a signal would reach only
one of them, the others would keep accepting, and shared resources would never close.
So this module takes signals away from uvicorn:

* every socket is bound before any server starts, so a port clash fails the whole
  process with one line naming the port, before any lifespan runs;
* one process-level handler sets `should_exit` on every server (they stop accepting at
  once and drain in-flight requests for the graceful timeout); a second signal sets
  `force_exit`;
* the runner waits for the first server to finish; if that happened without a signal,
  the server died, the others are stopped and the exit code is non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import structlog
import uvicorn
from prometheus_client import CollectorRegistry
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.fastpath.one_write import OneWriteHttpToolsProtocol
from gateway.process.connection_limits import ConnectionLimits, DeadlineSweep, bounded_protocol

log = structlog.get_logger("gateway.runner")

EXIT_OK = 0
EXIT_FAILURE = 1
# How long requests cancelled at the end of the grace period get to send their answer.
CANCELLED_ANSWER_WAIT_S = 5.0


class PortBindError(Exception):
    """A listening socket could not be bound; the message names the port."""


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the runner and sweeps its
    connections' deadlines (`gateway/process/connection_limits.py`)."""

    def __init__(self, config: uvicorn.Config, limits: ConnectionLimits) -> None:
        super().__init__(config)
        self.limits = limits
        self._sweep: DeadlineSweep | None = None
        # Set once this server accepts connections (after its lifespan started).
        self.accepting = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's startup, then the deadline sweep of this server's connections."""
        await super().startup(sockets=sockets)
        self._sweep = DeadlineSweep(
            self.server_state.connections,
            self.limits.sweep_interval_s,
            asyncio.get_running_loop(),
        )
        if self.started:
            self.accepting.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, then a bounded wait for the requests it cancelled.

        uvicorn cancels the requests still running when the grace period ends but does
        not wait for them; each still has its 503 to send
        (`gateway/api/middleware/shutdown_answer.py`) once its driver has unwound (a
        database connection stalled mid-query takes a moment to terminate). Without
        this wait the process would close the shared resources and exit under them.
        """
        await super().shutdown(sockets=sockets)
        if self.server_state.tasks and not self.force_exit:
            await asyncio.wait(set(self.server_state.tasks), timeout=CANCELLED_ANSWER_WAIT_S)
        # Swept until here: a client that stops reading during the drain is still cut.
        if self._sweep is not None:
            self._sweep.stop()


@dataclass
class ServerEntry:
    """One server of the process with its pre-bound socket."""

    name: str
    server: uvicorn.Server
    sock: socket.socket


def bind_socket(host: str, port: int, name: str) -> socket.socket:
    """Bind and listen on host:port, or raise `PortBindError` naming the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise PortBindError(f"cannot bind {name} port {host}:{port}: {reason}") from exc
    sock.set_inheritable(True)
    return sock


def make_server(
    app: object,
    sock: socket.socket,
    *,
    graceful_timeout_s: float,
    fastpath: bool = True,
    limits: ConnectionLimits | None = None,
    registry: CollectorRegistry | None = None,
    lifespan: str = "on",
    ws_ping_interval_s: float | None = 20.0,
    ws_max_message_bytes: int = 16_384,
) -> uvicorn.Server:
    """A uvicorn server for an app on a pre-bound socket, with our logging in charge and
    its connections bounded by `limits` (the settings' defaults when not given); cut
    connections are counted in `registry`, the port's metrics, when given. WebSockets
    (the public port's `/v1/ws`) get protocol pings every `ws_ping_interval_s` and take
    messages up to `ws_max_message_bytes`. `lifespan="off"` serves an app whose
    lifespan already runs (tests)."""
    limits = limits or ConnectionLimits.defaults()
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        lifespan=lifespan,  # type: ignore[arg-type]
        # Said, not guessed: uvicorn takes an app whose `__call__` is not a coroutine
        # function for ASGI2, and the apps' `__call__` returns the stack's coroutine.
        interface="asgi3",
        # httptools with each response in one write (gateway/fastpath/one_write.py), or
        # uvicorn's own httptools protocol with FASTPATH=off; bounded either way.
        http=bounded_protocol(
            OneWriteHttpToolsProtocol if fastpath else HttpToolsProtocol, limits, registry
        ),
        log_config=None,
        access_log=False,
        server_header=False,
        # Client addresses behind a proxy are the gateway's own decision
        # (TRUST_FORWARDED_FOR), not uvicorn's: its rewrite would trust any loopback peer.
        proxy_headers=False,
        timeout_graceful_shutdown=int(max(1, graceful_timeout_s)),
        fd=None,
        ws_ping_interval=ws_ping_interval_s,
        ws_ping_timeout=ws_ping_interval_s,
        ws_max_size=ws_max_message_bytes,
    )
    return _Server(config, limits)


async def _serve_one(entry: ServerEntry) -> None:
    try:
        await entry.server.serve(sockets=[entry.sock])
    except SystemExit as exc:
        # uvicorn exits with sys.exit() when a lifespan startup fails; inside a task that
        # would escape the event loop and skip every other server's shutdown.
        raise RuntimeError(f"{entry.name} server exited during startup (code {exc.code})") from exc


async def all_accepting(entries: Sequence[ServerEntry]) -> None:
    """Return once every server of `entries` accepts connections."""
    for entry in entries:
        if isinstance(entry.server, _Server):
            await entry.server.accepting.wait()


class Runner:
    """Runs a set of servers until a signal or until one of them stops."""

    def __init__(self, entries: Sequence[ServerEntry], stopping: asyncio.Event) -> None:
        self.entries = list(entries)
        self.stopping = stopping
        self._signalled = False

    def request_stop(self, signum: int | None = None) -> None:
        """First call: graceful stop of every server. Later calls: force exit."""
        if self._signalled:
            log.warning("forced_shutdown", signal=signum)
            for entry in self.entries:
                entry.server.force_exit = True
            return
        self._signalled = True
        log.info("shutdown_requested", signal=signum)
        self.stopping.set()
        for entry in self.entries:
            entry.server.should_exit = True

    async def run(self) -> int:
        """Serve until stopped; 0 after a requested stop, 1 if a server died."""
        loop = asyncio.get_running_loop()
        handled = (signal.SIGINT, signal.SIGTERM)
        for sig in handled:
            loop.add_signal_handler(sig, self.request_stop, sig)
        tasks = {
            asyncio.create_task(_serve_one(e), name=f"server-{e.name}"): e for e in self.entries
        }
        try:
            done, pending_set = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            pending = list(pending_set)
            failed = not self._signalled
            for task in done:
                if task.exception() is not None:
                    failed = True
                    log.error("server_failed", server=tasks[task].name, error=str(task.exception()))
                elif not self._signalled:
                    log.error("server_stopped_unexpectedly", server=tasks[task].name)
            if pending:
                # Stop the rest exactly as a signal would, so they drain gracefully.
                if not self._signalled:
                    self.request_stop()
                results = await asyncio.gather(*pending, return_exceptions=True)
                for task, result in zip(pending, results, strict=True):
                    if isinstance(result, BaseException):
                        failed = True
                        log.error("server_failed", server=tasks[task].name, error=str(result))
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            for entry in self.entries:
                entry.sock.close()
        return EXIT_FAILURE if failed else EXIT_OK
