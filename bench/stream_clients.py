"""Light load clients for bench/streams.py: raw asyncio sockets in a process of their own.

A client process holds thousands of connections to the gateway: SSE streams
(`GET /v1/jobs/{id}/events`, HTTP/1.1 chunked, parsed just enough to find each event's
type and its `data`), plain keep-alive connections that send `GET /health` and then
repeat it only to outlive uvicorn's 5 s keep-alive timeout, and a prober that times
`GET /v1/jobs/{id}` round trips one after another. It is driven over a pipe by the
benchmark (`ClientProcess`) and reports counts and latencies when asked.

Every chunk is stamped with `time.time()` the moment the event loop hands it over, and
an event's latency is that stamp minus the event's `at` (the commit's transaction time,
PostgreSQL `now()`, inside `data`): same machine, same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import multiprocessing.connection
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

TERMINAL = frozenset(
    {"job.completed", "job.partially_failed", "job.failed", "job.cancelled", "job.expired"}
)


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit towards `wanted` (the hard limit too when
    allowed: root); the soft limit in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Tally:
    """What one client process saw since the last reset."""

    opened: int = 0  # SSE streams answered 200 with their first frame
    refused: list[str] = field(default_factory=list)  # status lines of failed opens
    closed: int = 0  # streams the server ended
    heartbeats: int = 0
    events: int = 0  # frames other than snapshot/resync
    terminal: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    # (job id, seq, receive time): matched with the feed's publish times afterwards.
    received: list[tuple[str, int, float]] = field(default_factory=list)
    plain_open: int = 0
    plain_answers: int = 0
    plain_lost: int = 0  # plain connections the server closed
    rtt_ms: list[float] = field(default_factory=list)


class SSEClient(asyncio.Protocol):
    """One event stream: HTTP head, then chunked body split into SSE events."""

    def __init__(self, request: bytes, tally: Tally, first: asyncio.Future[None]) -> None:
        self.request = request
        self.tally = tally
        self.first = first
        self.transport: asyncio.Transport | None = None
        self.head_done = False
        self.raw = b""  # undecoded bytes (head, then chunk framing)
        self.text = b""  # decoded body not yet split into events
        self.got_first = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.raw += data
        if not self.head_done:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.raw = self.raw[:end], self.raw[end + 4 :]
            status = head.split(b"\r\n", 1)[0]
            if b" 200 " not in status + b" ":
                body = self.raw[:200].decode(errors="replace")
                self.tally.refused.append(f"{status.decode(errors='replace')} {body}")
                if not self.first.done():
                    self.first.set_result(None)
                assert self.transport is not None
                self.transport.close()
                return
            self.head_done = True
        while True:  # chunked transfer coding
            line_end = self.raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(self.raw[:line_end].split(b";", 1)[0], 16)
            if len(self.raw) < line_end + 2 + size + 2:
                break
            self.text += self.raw[line_end + 2 : line_end + 2 + size]
            self.raw = self.raw[line_end + 2 + size + 2 :]
            if size == 0:
                break
        while True:
            end = self.text.find(b"\n\n")
            if end < 0:
                break
            block, self.text = self.text[:end], self.text[end + 2 :]
            self.on_event(block, now)

    def on_event(self, block: bytes, now: float) -> None:
        kind = b""
        data = b""
        for line in block.split(b"\n"):
            if line.startswith(b"event: "):
                kind = line[7:]
            elif line.startswith(b"data: "):
                data = line[6:]
            elif line.startswith(b": keep-alive"):
                self.tally.heartbeats += 1
        if not kind:
            return
        if not self.got_first:
            self.got_first = True
            self.tally.opened += 1
            if not self.first.done():
                self.first.set_result(None)
            if kind in (b"snapshot", b"resync"):
                return
        if kind in (b"snapshot", b"resync", b"shutdown"):
            return
        self.tally.events += 1
        event = json.loads(data)
        at = datetime.fromisoformat(event["at"]).timestamp()
        self.tally.latencies_ms.append(1000 * (now - at))
        self.tally.received.append((event["job_id"], event["seq"], now))
        if kind.decode() in TERMINAL:
            self.tally.terminal += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.closed += 1
        if not self.first.done():
            self.tally.refused.append(f"closed before the first frame ({exc!r})")
            self.first.set_result(None)


class PlainClient(asyncio.Protocol):
    """A keep-alive connection that asks `GET /health` now and every `refresh_s`."""

    REQUEST = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"

    def __init__(self, tally: Tally, first: asyncio.Future[None], refresh_s: float) -> None:
        self.tally = tally
        self.first = first
        self.refresh_s = refresh_s
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.REQUEST)

    def data_received(self, data: bytes) -> None:
        answers = data.count(b"HTTP/1.1 200")
        self.tally.plain_answers += answers
        if answers and not self.first.done():
            self.tally.plain_open += 1
            self.first.set_result(None)
        if answers and self.refresh_s > 0:
            loop = asyncio.get_running_loop()
            self.timer = loop.call_later(self.refresh_s, self._again)

    def _again(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.REQUEST)

    def close(self) -> None:
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.first.done():
            self.first.set_result(None)
        if not self.closing:
            self.tally.plain_lost += 1


class Driver:
    """The client process's state and its commands."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.tally = Tally()
        self.streams: list[SSEClient] = []
        self.plain: list[PlainClient] = []
        self.prober: asyncio.Task[None] | None = None

    async def open_sse(
        self, port: int, paths: Sequence[str], headers: dict[str, str], concurrency: int
    ) -> dict[str, Any]:
        """Open a stream per path, at most `concurrency` waiting for their first frame."""
        loop = asyncio.get_running_loop()
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        gate = asyncio.Semaphore(concurrency)
        started = time.monotonic()

        async def one(path: str) -> None:
            async with gate:
                first: asyncio.Future[None] = loop.create_future()
                request = (
                    f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
                    f"{extra}\r\n"
                ).encode()
                try:
                    _, proto = await loop.create_connection(
                        lambda: SSEClient(request, self.tally, first), self.host, port
                    )
                except OSError as exc:
                    self.tally.refused.append(f"connect: {exc!r}")
                    return
                self.streams.append(proto)
                await first

        await asyncio.gather(*(one(p) for p in paths))
        return {
            "open_s": time.monotonic() - started,
            "opened": self.tally.opened,
            "refused": self.tally.refused[:5],
            "refused_count": len(self.tally.refused),
        }

    async def open_plain(
        self, port: int, count: int, refresh_s: float, concurrency: int
    ) -> dict[str, Any]:
        """Open `count` plain connections, each answered once."""
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(concurrency)
        started = time.monotonic()

        async def one(i: int) -> None:
            async with gate:
                first: asyncio.Future[None] = loop.create_future()
                # Spread the repeats over the whole interval, not in step.
                refresh = refresh_s * (0.8 + 0.2 * (i % 100) / 100) if refresh_s else 0.0
                try:
                    _, proto = await loop.create_connection(
                        lambda: PlainClient(self.tally, first, refresh), self.host, port
                    )
                except OSError:
                    self.tally.plain_lost += 1
                    return
                self.plain.append(proto)
                await first

        await asyncio.gather(*(one(i) for i in range(count)))
        return {
            "open_s": time.monotonic() - started,
            "open": self.tally.plain_open,
            "lost": self.tally.plain_lost,
        }

    def close_plain(self) -> None:
        """Close every plain connection."""
        for proto in self.plain:
            proto.close()
        self.plain.clear()

    def close_sse(self) -> None:
        """Close every stream still open."""
        for proto in self.streams:
            if proto.transport is not None:
                proto.transport.close()
        self.streams.clear()

    def start_rtt(self, port: int, path: str, headers: dict[str, str], interval_s: float) -> None:
        """Time `GET path` round trips on one keep-alive connection until stopped."""
        self.prober = asyncio.create_task(self._probe(port, path, headers, interval_s))

    async def _probe(
        self, port: int, path: str, headers: dict[str, str], interval_s: float
    ) -> None:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n{extra}\r\n".encode()
        reader, writer = await asyncio.open_connection(self.host, port)
        try:
            while True:
                sent = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.tally.rtt_ms.append(1000 * (time.perf_counter() - sent))
                if not head.startswith(b"HTTP/1.1 200"):
                    self.tally.refused.append("rtt: " + head[:60].decode(errors="replace"))
                await asyncio.sleep(interval_s)
        finally:
            writer.close()

    async def stop_rtt(self) -> None:
        """Stop the prober."""
        if self.prober is not None:
            self.prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.prober
            self.prober = None

    def report(self, reset: bool) -> dict[str, Any]:
        """The tally (as a dict); a fresh one after when `reset`."""
        out = dict(self.tally.__dict__)
        out["cpu_s"] = time.process_time()
        out["open_streams"] = sum(
            1 for s in self.streams if s.transport is not None and not s.transport.is_closing()
        )
        if reset:
            self.tally = Tally()
        return out


async def _serve(conn: multiprocessing.connection.Connection, host: str) -> None:
    loop = asyncio.get_running_loop()
    driver = Driver(host)
    while True:
        command, kwargs = await loop.run_in_executor(None, conn.recv)
        if command == "quit":
            driver.close_plain()
            driver.close_sse()
            await driver.stop_rtt()
            conn.send({})
            return
        answer: Any = None
        if command == "open_sse":
            answer = await driver.open_sse(**kwargs)
        elif command == "open_plain":
            answer = await driver.open_plain(**kwargs)
        elif command == "close_plain":
            driver.close_plain()
        elif command == "close_sse":
            driver.close_sse()
        elif command == "start_rtt":
            driver.start_rtt(**kwargs)
        elif command == "stop_rtt":
            await driver.stop_rtt()
        elif command == "report":
            answer = driver.report(**kwargs)
        elif command == "count":
            answer = {"terminal": driver.tally.terminal, "events": driver.tally.events}
        conn.send(answer)


def client_main(conn: multiprocessing.connection.Connection, host: str, nofile: int) -> None:
    """Entry point of a client process."""
    raise_nofile(nofile)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_serve(conn, host))


class ClientProcess:
    """A client process and its pipe (blocking calls: the benchmark's side)."""

    def __init__(self, host: str = "127.0.0.1", nofile: int = 65536) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=client_main, args=(child, host, nofile), daemon=True)
        self.process.start()

    def send(self, command: str, **kwargs: Any) -> None:
        """Send a command without waiting for its answer."""
        self._conn.send((command, kwargs))

    def answer(self, timeout_s: float = 600.0) -> Any:
        """The answer to the last command sent."""
        if not self._conn.poll(timeout_s):
            raise TimeoutError("the client process did not answer")
        return self._conn.recv()

    def call(self, command: str, timeout_s: float = 600.0, **kwargs: Any) -> Any:
        """Send a command and wait for its answer."""
        self.send(command, **kwargs)
        return self.answer(timeout_s)

    def cpu_seconds(self) -> float:
        """User plus system CPU of the client process so far."""
        with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def quit(self) -> None:
        """Close everything and end the process."""
        with contextlib.suppress(TimeoutError, OSError, EOFError):
            self.call("quit", timeout_s=30)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
