"""Traffic for the panel proof (`monitoring/prove_dashboard.py`), as pluggable sources.

Each `TrafficSource` is one plane's driver: the metrics its traffic produces (by plane,
from `monitoring/metrics.yml`), extra environment for the gateway it needs (short lease
timeouts, upstream URLs), and a `run` coroutine called once per round while Prometheus
scrapes. A source whose `run` is None is a hook not filled in yet: the proof then
reports the panels that only it could feed as MISSING ... (pending), and fails.

    foundation    filled: public/internal requests, 404s, 405s, /ready, /metrics
    worker-plane  HOOK: fill in when the worker plane is merged (see its docstring)
    public-plane  HOOK: fill in when the public plane is merged (see its docstring)

Sources get a `TrafficContext`: an httpx client, the three ports, the fake upstream
(switch `upstream.outage` on to make it answer 503s), and the Redis/database URLs and
key prefix the gateway runs with, for drivers that need to seed state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx


class FakeUpstream:
    """A tiny HTTP server standing in for the parser service; `outage` makes it fail."""

    def __init__(self) -> None:
        self.outage = False
        self.requests = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """Base URL to hand to the gateway."""
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or 0)
            if length:
                await reader.readexactly(length)
            self.requests += 1
            status, body = (
                (503, {"error": "outage"}) if self.outage else (200, {"ok": True, "items": []})
            )
            payload = json.dumps(body).encode()
            reason = b"Service Unavailable" if status == 503 else b"OK"
            writer.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, reason, len(payload), payload)
            )
            await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeUpstream]:
        """Serve on a free loopback port for the duration of the block."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class TrafficContext:
    """What a traffic source can use."""

    client: httpx.AsyncClient
    ports: dict[str, int]
    upstream: FakeUpstream
    redis_url: str
    redis_key_prefix: str
    database_url: str
    round: int = 0

    def url(self, audience: str, path: str) -> str:
        """Full URL of `path` on one audience's port (public, parcel, party)."""
        return f"http://127.0.0.1:{self.ports[audience]}{path}"


@dataclass
class TrafficSource:
    """One plane's traffic driver; `run` is None while its hook is not filled in."""

    plane: str
    run: Callable[[TrafficContext], Awaitable[None]] | None
    env: dict[str, str] = field(default_factory=dict)
    description: str = ""


async def foundation_traffic(ctx: TrafficContext) -> None:
    """Ops endpoints on every port, a 404 and a 405 on the public port."""
    calls = [ctx.client.get(ctx.url(a, p)) for a in ctx.ports for p in ("/health", "/ready")]
    calls += [
        ctx.client.get(ctx.url("public", "/v1/no-such-route")),
        ctx.client.delete(ctx.url("public", "/health")),
        ctx.client.get(ctx.url("parcel", "/internal/info")),
        ctx.client.get(ctx.url("party", "/internal/info")),
    ]
    await asyncio.gather(*calls)


# --- HOOK(worker-plane) -------------------------------------------------------------
# Fill in when the worker-plane branch is merged. Per round, through the worker client
# (or its HTTP API) on the parcel and party ports, for at least one platform:
#   * enqueue tasks, lease them, heartbeat, complete them with every outcome the
#     contract lists (succeeded, failed_retry, dead_lettered, duplicate, stale) and
#     commit results;
#   * let one lease expire (set a short lease timeout through `env` below, e.g.
#     {"LEASE_TIMEOUT_S": "1"}) and fail one task until it is dead-lettered;
#   * lease and release proxies (ok, banned, error) and exhaust one platform's pool,
#     so the proxy counters and the gateway_proxies gauge have series.
# Panels waiting for it: the Worker plane row, and proxies in the last row.
# Replace None with `async def worker_plane_traffic(ctx: TrafficContext) -> None`.
WORKER_PLANE_TRAFFIC: Callable[[TrafficContext], Awaitable[None]] | None = None
WORKER_PLANE_ENV: dict[str, str] = {}


# --- HOOK(public-plane) -------------------------------------------------------------
# Fill in when the public-plane branch is merged. Per round, on the public port:
#   * authenticated requests in at least two tiers (principal ids, never secrets, in
#     the logs), some with bad credentials (auth failures by reason);
#   * repeated reads for cache hits, new keys for misses, concurrent identical reads for
#     single-flight waits, and enough requests to get 429s (rate and quota);
#   * an upstream outage: set `ctx.upstream.outage = True` for a few rounds so upstream
#     5xx are counted and the breaker opens, then switch it back so it half-opens and
#     closes (point the gateway at `ctx.upstream.url` through `env`; PARSER_SERVICE_URL
#     already is).
# Panels waiting for it: the Public traffic auth panel and the Protection row.
# Replace None with `async def public_plane_traffic(ctx: TrafficContext) -> None`.
PUBLIC_PLANE_TRAFFIC: Callable[[TrafficContext], Awaitable[None]] | None = None
PUBLIC_PLANE_ENV: dict[str, str] = {}


def sources() -> list[TrafficSource]:
    """Every traffic source, filled in or not."""
    return [
        TrafficSource("foundation", foundation_traffic, description="ops endpoints, 404s, 405s"),
        TrafficSource(
            "worker-plane",
            WORKER_PLANE_TRAFFIC,
            WORKER_PLANE_ENV,
            "tasks through the worker client, proxies",
        ),
        TrafficSource(
            "public-plane",
            PUBLIC_PLANE_TRAFFIC,
            PUBLIC_PLANE_ENV,
            "hits, misses, 429s, an upstream outage",
        ),
    ]
