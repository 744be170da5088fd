"""Latency at a fixed, moderate request rate, measured without coordinated omission.

wrk has no fixed-rate mode (wrk2 is not packaged) and its Lua `delay()` makes every
connection wait the same time after its own response, so the connections fire in step:
a "200 req/s" run is really bursts of 8 requests arriving together, and the slower
target queues its own burst. That measures the burst, not the latency a gateway adds.

Here requests are scheduled open loop, evenly spaced: request *i* is due at
`start + i / rate`. Each goes out on an idle keep-alive connection of a small pool (a
slow answer does not delay the schedule; a request that finds every connection busy
waits for one, and that wait counts). Latency runs from the request's *scheduled* time
(or from when the client's timer really fired, if that was later: the client's lateness
is not the server's) to the last byte of its response, so a stall shows up in every
request it delays, as it would for real users. The request is pre-encoded bytes and the
response is parsed just far enough to find its end (`Content-Length`), on uvloop, so the
client's own cost per request is a few microseconds and the same for every target.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import uvloop


@dataclass(frozen=True)
class PacedResult:
    """One paced run."""

    requests: int
    errors: int
    elapsed_s: float
    p50_ms: float
    p99_ms: float

    @property
    def requests_per_s(self) -> float:
        """The rate actually achieved."""
        return self.requests / self.elapsed_s


def _request(url: str, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _run(
    url: str, headers: dict[str, str], rate: float, duration_s: float, connections: int
) -> PacedResult:
    host, port, request = _request(url, headers)
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, port))
    latencies: list[float] = []
    errors = 0

    async def one(due: float) -> None:
        nonlocal errors
        # A timer that fires late is the client's lateness, not the server's: count from
        # when the request was really ready to go. Waiting for a busy connection counts.
        ready = max(due, time.perf_counter())
        conn = await idle.get()
        try:
            status = await _exchange(*conn, request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn[1].close()
            conn = await asyncio.open_connection(host, port)
        else:
            latencies.append(time.perf_counter() - ready)
            if not 200 <= status < 400:
                errors += 1
        idle.put_nowait(conn)

    total = int(rate * duration_s)
    interval = 1.0 / rate
    pending: set[asyncio.Task[None]] = set()
    start = time.perf_counter() + 0.05
    for i in range(total):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    elapsed = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait()[1].close()
    latencies.sort()
    return PacedResult(
        requests=len(latencies),
        errors=errors,
        elapsed_s=elapsed,
        p50_ms=statistics.median(latencies) * 1e3,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
    )


def paced(
    url: str, headers: dict[str, str], *, rate: float, duration_s: float, connections: int = 8
) -> PacedResult:
    """Load `url` at `rate` requests/s for `duration_s` (see the module docstring)."""
    return uvloop.run(_run(url, headers, rate, duration_s, connections))
