"""Traffic for the panel proof (`monitoring/prove_dashboard.py`), as pluggable sources.

Each `TrafficSource` is one plane's driver: the metrics its traffic produces (by plane,
from `monitoring/metrics.yml`), extra environment for the gateway it needs (short lease
timeouts, upstream URLs), and a `run` coroutine called once per round while Prometheus
scrapes. A source whose `run` is None is a hook not filled in yet: the proof then
reports the panels that only it could feed as MISSING ... (pending), and fails.

    foundation    filled: public/internal requests, 404s, 405s, /ready, /metrics
    worker-plane  filled: tasks with every outcome on both internal ports, an expired
                  lease, dead letters (a producer token per port, seeded in-process);
                  proxies leased and released ok/error/banned, one platform exhausted
    public-plane  filled: two tiers, hits, misses, single flight, 429s (rate, quota,
                  monitoring/proof_tiers.toml), bad credentials, an upstream outage
    streams       filled: a job per round followed over real SSE streams (snapshot,
                  live events, a resume, a resync, both follower-cap 429s) while a
                  worker token completes it; one stream held open for the whole run
    webhooks      filled: a job per round completed, its job.completed delivered to a
                  local receiver answering 200 and to one answering 500 (retried);
                  a third answering 410 is disabled by the first round's delivery

Sources get a `TrafficContext`: an httpx client, the three ports, the fake upstream
(switch `upstream.outage` on to make it answer 503s), and the Redis/database URLs and
key prefix the gateway runs with, for drivers that need to seed state. A source's `stop`
(optional) runs once after the last round, before the panels are evaluated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from gateway.audit.actor import Actor
    from gateway.core.resources import Resources


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
    # What a source seeds in its first round (tokens, keys) and reuses afterwards.
    state: dict[str, Any] = field(default_factory=dict)

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
    # Ends what the rounds left running (open streams), once after the last round.
    stop: Callable[[TrafficContext], Awaitable[None]] | None = None


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
# Proxies go through the party port (the pool is shared by both internal ports), so
# the proxy panels show the party audience's counters next to the parcel tasks.

WORK_PLATFORM = "proof_county"  # leased and completed every round
EXPIRE_PLATFORM = "proof_expire"  # leased and abandoned: the reaper reclaims the lease
BACKLOG_PLATFORM = "proof_backlog"  # never leased: ready depth and oldest ready age
WORKER_ID = "proof-worker-1"

WORKER_PLANE_ENV: dict[str, str] = {
    # Only the abandoned platform's leases are short; the others never expire mid-round.
    "LEASE_TIMEOUT_S": "60",
    "LEASE_TIMEOUT_OVERRIDES_S": json.dumps({EXPIRE_PLATFORM: 0.5}),
    "REAPER_INTERVAL_S": "0.5",
    # Second failure dead-letters; failed tasks are ready again at once.
    "MAX_ATTEMPTS": "2",
    "RETRY_BACKOFF_BASE_S": "0",
    "RETRY_BACKOFF_CAP_S": "0",
    # Proxy gauges refreshed twice a second (they are computed from Redis).
    "PROXY_MAINTENANCE_INTERVAL_S": "0.5",
    # One Celery route at share 0, on the proof's own Redis and key prefix as broker
    # (`$REDIS_URL` and `$PREFIX` are filled in by prove_dashboard.py): its share gauges
    # are exported, every task stays native, and no Celery worker is needed. The lag
    # histogram is exported at 0; a worker answering it is proven by tests/work/routing.
    "CELERY_BROKER_URL": "$REDIS_URL",
    "CELERY_BROKER_TRANSPORT_OPTIONS": json.dumps({"global_keyprefix": "$PREFIXcelery:"}),
    "CELERY_ROUTES": json.dumps(
        [
            {
                "audience": "parcel",
                "platform": "*",
                "share": 0.0,
                "task": "scrape_parcel",
                "queue": "proof.parcels",
            }
        ]
    ),
}
# Two proxies nobody connects to: the proof only leases and releases them.
PROXY_URLS = ("http://proof:secret@127.0.0.1:9", "http://proof:secret@127.0.0.1:10")
BANNED_PLATFORM = "proof_banned"  # every proxy banned here at once: then exhausted


def _result_data(audience: str, key: str, platform: str = WORK_PLATFORM) -> dict[str, Any]:
    """A valid succeeded result for the port's schema (ParcelResult or PartyResult)."""
    scraped_at = datetime.now(UTC).isoformat()
    if audience == "parcel":
        return {
            "parcel_id": key,
            "state": "FL",
            "county": "Proof",
            "platform": platform,
            "lien_status": "active",  # a watched field: a watched parcel's first result changes
            "scraped_at": scraped_at,
        }
    return {
        "party_id": key,
        "name": "Proof Party",
        "kind": "organization",
        "platform": platform,
        "scraped_at": scraped_at,
    }


async def _worker_round(ctx: TrafficContext, audience: str, token: str) -> None:
    """One audience's round: enqueue, lease, heartbeat, every completion outcome."""
    headers = {"X-Worker-Token": token}
    base = ctx.url(audience, "/internal")
    r = ctx.round
    tasks = [
        {"platform": WORK_PLATFORM, "key": f"{kind}-{r}", "payload": {}}
        for kind in ("ok", "retry", "fatal")
    ]
    tasks.append({"platform": EXPIRE_PLATFORM, "key": f"expire-{r}", "payload": {}})
    tasks.append({"platform": BACKLOG_PLATFORM, "key": f"backlog-{r}", "payload": {}})
    # A duplicate enqueue of a live key, too (counted, not enqueued twice).
    tasks.append({"platform": BACKLOG_PLATFORM, "key": f"backlog-{r}", "payload": {}})
    response = await ctx.client.post(f"{base}/tasks", json={"tasks": tasks}, headers=headers)
    response.raise_for_status()

    work = await ctx.client.get(
        f"{base}/work",
        params={
            "worker_id": WORKER_ID,
            "platforms": f"{WORK_PLATFORM},{EXPIRE_PLATFORM}",
            "limit": 50,
            "wait": 0,
        },
        headers=headers,
    )
    work.raise_for_status()
    leased = work.json()["tasks"]
    await ctx.client.post(
        f"{base}/heartbeat",
        json={
            "worker_id": WORKER_ID,
            "platforms": [WORK_PLATFORM, EXPIRE_PLATFORM],
            "lease_ids": [t["lease_id"] for t in leased],
            "version": "proof",
        },
        headers=headers,
    )
    results: list[dict[str, Any]] = []
    for task in leased:
        if task["platform"] != WORK_PLATFORM:
            continue  # abandoned: its lease expires and the reaper reclaims it
        ids = {"task_id": task["task_id"], "lease_id": task["lease_id"]}
        kind = task["key"].split("-", 1)[0]
        if kind == "ok":
            data = _result_data(audience, task["key"])
            results.append({**ids, "status": "succeeded", "data": data})
        else:  # retry: failed_retry, then dead_lettered on its second attempt
            error = {"message": "proof failure", "retryable": kind == "retry"}
            results.append({**ids, "status": "failed", "error": error})
    if leased:
        # A lease nobody holds (stale) ...
        task = leased[0]
        results.append(
            {
                "task_id": task["task_id"],
                "lease_id": "proof-stale-lease",
                "status": "failed",
                "error": {"message": "stale", "retryable": True},
            }
        )
    body = {"worker_id": WORKER_ID, "results": results}
    (await ctx.client.post(f"{base}/results", json=body, headers=headers)).raise_for_status()
    # ... and the same batch again: every lease it completed is now a duplicate.
    await ctx.client.post(f"{base}/results", json=body, headers=headers)


async def _proxy_round(ctx: TrafficContext, audience: str, token: str) -> None:
    """Lease and release proxies with every outcome; ban them all on one platform."""
    headers = {"X-Worker-Token": token}
    base = ctx.url(audience, "/internal/proxy")

    async def lease(platform: str) -> httpx.Response:
        body = {"worker_id": WORKER_ID, "platform": platform}
        return await ctx.client.post(f"{base}/lease", json=body, headers=headers)

    async def release(lease: httpx.Response, outcome: str) -> None:
        lease_id = lease.json()["proxy_lease_id"]
        body = {"worker_id": WORKER_ID, "proxy_lease_id": lease_id, "outcome": outcome}
        (await ctx.client.post(f"{base}/release", json=body, headers=headers)).raise_for_status()

    for outcome in ("ok", "error"):
        leased = await lease(WORK_PLATFORM)
        leased.raise_for_status()
        await release(leased, outcome)
    # A ban cools the proxy down on that platform for PROXY_BAN_BASE_S (60 s): after
    # the first rounds every lease there is refused as exhausted (503).
    leased = await lease(BANNED_PLATFORM)
    if leased.status_code == 200:
        await release(leased, "banned")
    elif leased.status_code != 503:
        leased.raise_for_status()


async def worker_plane_traffic(ctx: TrafficContext) -> None:
    """Tasks through the worker HTTP API on both internal ports, and proxies."""
    tokens = ctx.state.get("worker_tokens")
    if tokens is None:
        tokens = ctx.state["worker_tokens"] = await create_worker_tokens(ctx)
    await asyncio.gather(
        *(_worker_round(ctx, a, t) for a, t in tokens.items()),
        _proxy_round(ctx, "party", tokens["party"]),
    )


WORKER_PLANE_TRAFFIC: Callable[[TrafficContext], Awaitable[None]] | None = worker_plane_traffic


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

OUTAGE_S = (1.0, 3.0)  # seconds after the first round: the fake upstream answers 503

PUBLIC_PLANE_ENV: dict[str, str] = {
    "TIERS_FILE": str(Path(__file__).resolve().parent / "proof_tiers.toml"),
    # Every request comes from 127.0.0.1: the bad-credential rounds must not lock out
    # the good ones.
    "AUTH_FAILURE_LIMIT": "1000000",
    # Entries go stale within a second, so the outage serves STALE from the cache.
    "CACHE_DEFAULT_TTL_S": "1",
    "BREAKER_FAIL_MAX": "3",
    "BREAKER_RESET_TIMEOUT_S": "1",
}
PUBLIC_KEY_TIERS = ("pro", "enterprise", "proof_rate", "proof_quota")


async def public_plane_traffic(ctx: TrafficContext) -> None:
    """Hits, misses, single flight, 429s, bad credentials and an upstream outage."""
    keys = ctx.state.get("api_keys")
    if keys is None:
        keys = ctx.state["api_keys"] = await create_api_keys(ctx, PUBLIC_KEY_TIERS)
        ctx.state["public_started"] = time.monotonic()
    elapsed = time.monotonic() - ctx.state["public_started"]
    ctx.upstream.outage = OUTAGE_S[0] <= elapsed < OUTAGE_S[1]

    def get(tier: str | None, path: str, headers: dict[str, str] | None = None) -> Any:
        auth = {} if tier is None else {"X-API-Key": keys[tier]}
        return ctx.client.get(ctx.url("public", path), headers={**auth, **(headers or {})})

    r = ctx.round
    await asyncio.gather(
        get("pro", "/v1/properties/proof-hot"),  # a hit on every round but the first
        get("enterprise", "/v1/properties/proof-hot"),  # another tier, another entry
        get("pro", f"/v1/properties/proof-miss-{r}"),
        get("pro", "/v1/properties/search", None),
        get("pro", "/v1/me"),
        *(get("enterprise", f"/v1/properties/proof-flight-{r}") for _ in range(5)),
        *(get("proof_rate", "/v1/properties/proof-hot") for _ in range(3)),
        get("proof_quota", "/v1/properties/proof-hot"),
        get(None, "/v1/me"),  # missing_credentials
        get(None, "/v1/me", {"X-API-Key": "tlk_proof_not-a-real-key"}),
        get(None, "/v1/me", {"Authorization": "Basic cHJvb2Y6cHJvb2Y="}),
    )


PUBLIC_PLANE_TRAFFIC: Callable[[TrafficContext], Awaitable[None]] | None = public_plane_traffic


# --- live streams -------------------------------------------------------------------
# Client jobs on their own platforms (the worker-plane source completes WORK_PLATFORM
# tasks by the kind in their key), followed over real SSE streams of the public port
# (GET /v1/jobs/{id}/events) while this source's worker token completes them. Per
# round, one job of two items:
#   * stream A opens fresh: its snapshot, then the first item's job.progress (lag);
#   * stream B resumes from that event's id (a resume, nothing to replay);
#   * a third follower of the job is refused (too_many_followers, SSE_MAX_PER_JOB=2);
#   * stream C on the held job fills the caller's four places, so one more stream is
#     refused (too_many_streams, SSE_MAX_PER_PRINCIPAL=4); C is closed (client);
#   * the second item: B gets job.progress and job.completed, and A and B end
#     (finished);
#   * stream D resumes from an id the job never had: a resync, and the job is finished,
#     so D ends after it.
# One stream on a held job (never worked) stays open for the whole run, so the open
# gauge reads 1 at every scrape; `stop` cancels that job and the stream ends with it.
# Whether the gateway freed a closed stream's places is read from the public port's
# /metrics (gateway_streams_open), never assumed after a pause.
# Not produced: slow-client drops. A client that stops reading is only dropped once
# STREAM_BUFFER_EVENTS events are queued behind a blocked write, and on loopback the
# kernel and asyncio buffer about 2 MB (thousands of events) before a write blocks.

STREAM_PLATFORM = "proof_stream"  # a two-item job per round, completed by this source
HOLD_PLATFORM = "proof_stream_hold"  # one job nobody works: its stream stays open
STREAM_WORKER_ID = "proof-stream-worker"
WEBHOOK_PLATFORM = "proof_webhook"  # a one-item job per round, its completion delivered
STREAMS_ENV: dict[str, str] = {
    # The webhooks source's platform too: one JOB_PLATFORMS serves both sources.
    "JOB_PLATFORMS": json.dumps({"parcel": [STREAM_PLATFORM, HOLD_PLATFORM, WEBHOOK_PLATFORM]}),
    "SSE_MAX_PER_JOB": "2",
    "SSE_MAX_PER_PRINCIPAL": "4",
    # A keep-alive every second: the held stream is never idle for the client's
    # 10 s read timeout.
    "SSE_HEARTBEAT_S": "1",
}
# An id above any sequence a proof job reaches: resuming from it is a resync.
UNKNOWN_EVENT_ID = str(10**12)
_STREAM_WAIT_S = 10.0


@dataclass
class SseEvent:
    """One Server-Sent Event as EventSource dispatches it."""

    event: str
    id: str | None
    data: str


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """The events of a `text/event-stream` response until the server ends it."""
    kind, seen_id = "message", None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SseEvent(kind, seen_id, "\n".join(data))
            kind, seen_id, data = "message", None, []
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            seen_id = value


@dataclass
class StreamsState:
    """What the streams source seeded: a key, a worker token, the held job and stream."""

    key: str
    token: str
    held_job: str
    held: asyncio.Task[list[str]]


def _stream_headers(state: StreamsState, last_id: str | None = None) -> dict[str, str]:
    headers = {"X-API-Key": state.key, "Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    return headers


@contextlib.asynccontextmanager
async def _sse(
    ctx: TrafficContext, state: StreamsState, job_id: str, last_id: str | None = None
) -> AsyncIterator[AsyncIterator[SseEvent]]:
    """The events of an open SSE stream of `job_id` (200 checked); leaving the block
    before the stream ended is the client going away."""
    url = ctx.url("public", f"/v1/jobs/{job_id}/events")
    async with ctx.client.stream("GET", url, headers=_stream_headers(state, last_id)) as resp:
        if resp.status_code != 200:
            await resp.aread()
            raise RuntimeError(f"stream of {job_id}: {resp.status_code} {resp.text[:300]}")
        yield sse_events(resp)


async def _refused(ctx: TrafficContext, state: StreamsState, job_id: str, slug: str) -> None:
    """Opening one more stream of `job_id` is a 429 with problem type `slug`."""
    url = ctx.url("public", f"/v1/jobs/{job_id}/events")
    response = await ctx.client.get(url, headers=_stream_headers(state))
    problem = response.json() if response.status_code == 429 else {}
    if not str(problem.get("type", "")).endswith(slug):
        raise RuntimeError(f"expected a 429 {slug}: {response.status_code} {response.text[:300]}")


async def _next(events: AsyncIterator[SseEvent], *types: str) -> SseEvent:
    """The stream's next event, which must be one of `types`."""
    event = await anext(events)
    if event.event not in types:
        raise RuntimeError(f"expected one of {types}, got {event.event}: {event.data[:300]}")
    return event


async def _streams_open(ctx: TrafficContext) -> float:
    """gateway_streams_open{kind="sse"} on the public port's /metrics right now."""
    from prometheus_client.parser import text_string_to_metric_families

    text = (await ctx.client.get(ctx.url("public", "/metrics"))).text
    for family in text_string_to_metric_families(text):
        if family.name == "gateway_streams_open":
            for sample in family.samples:
                if sample.labels.get("kind") == "sse":
                    return float(sample.value)
    raise RuntimeError('gateway_streams_open{kind="sse"} is not exported by the public port')


async def _until_streams_open(ctx: TrafficContext, expected: int) -> None:
    """Wait until the gateway holds `expected` SSE streams (closed ones freed their
    places): the caps of the next step depend on it."""
    deadline = time.monotonic() + _STREAM_WAIT_S
    while (found := await _streams_open(ctx)) != expected:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{found:g} SSE streams open after {_STREAM_WAIT_S}s, not {expected}"
            )
        await asyncio.sleep(0.05)


async def _submit(ctx: TrafficContext, api_key: str, platform: str, keys: list[str]) -> str:
    """POST /v1/jobs for these parcels; the job id."""
    body = {
        "kind": "parcel_refresh",
        "items": [{"platform": platform, "parcel_id": key} for key in keys],
    }
    response = await ctx.client.post(
        ctx.url("public", "/v1/jobs"), json=body, headers={"X-API-Key": api_key}
    )
    response.raise_for_status()
    job_id: str = response.json()["id"]
    return job_id


async def _complete_parcel_task(
    ctx: TrafficContext, token: str, worker_id: str, platform: str
) -> None:
    """Lease one task of `platform` on the parcel port and post its success."""
    headers = {"X-Worker-Token": token}
    base = ctx.url("parcel", "/internal")
    params: dict[str, str | int] = {
        "worker_id": worker_id,
        "platforms": platform,
        "limit": 1,
        "wait": 0,
    }
    work = await ctx.client.get(f"{base}/work", params=params, headers=headers)
    work.raise_for_status()
    (task,) = work.json()["tasks"]
    result = {
        "task_id": task["task_id"],
        "lease_id": task["lease_id"],
        "status": "succeeded",
        "data": _result_data("parcel", task["key"], platform),
    }
    body = {"worker_id": worker_id, "results": [result]}
    (await ctx.client.post(f"{base}/results", json=body, headers=headers)).raise_for_status()


async def _complete_one(ctx: TrafficContext, state: StreamsState) -> None:
    """Lease one task of STREAM_PLATFORM on the parcel port and post its success."""
    await _complete_parcel_task(ctx, state.token, STREAM_WORKER_ID, STREAM_PLATFORM)


async def _hold(ctx: TrafficContext, key: str, job_id: str, opened: asyncio.Event) -> list[str]:
    """Follow the held job until its stream ends; the event types it sent."""
    url = ctx.url("public", f"/v1/jobs/{job_id}/events")
    headers = {"X-API-Key": key, "Accept": "text/event-stream"}
    types: list[str] = []
    async with ctx.client.stream("GET", url, headers=headers) as response:
        response.raise_for_status()
        async for event in sse_events(response):
            types.append(event.event)
            opened.set()
    return types


async def _streams_setup(ctx: TrafficContext) -> StreamsState:
    """A key and a worker token, and the held job's stream, open."""
    from gateway.work.plane import token_store
    from gateway.work.tokens import Role

    key = (await create_api_keys(ctx, ("enterprise",)))["enterprise"]
    async with gateway_resources(ctx) as resources:
        token = await token_store(resources).create(
            audience="parcel", name="proof-streams-worker", role=Role.WORKER, actor=proof_actor()
        )
    held_job = await _submit(ctx, key, HOLD_PLATFORM, ["held"])
    opened = asyncio.Event()
    held = asyncio.create_task(_hold(ctx, key, held_job, opened), name="proof-held-stream")
    opened_wait = asyncio.create_task(opened.wait())
    await asyncio.wait(
        {held, opened_wait}, timeout=_STREAM_WAIT_S, return_when=asyncio.FIRST_COMPLETED
    )
    opened_wait.cancel()
    if not opened.is_set():
        if held.done():
            held.result()  # the stream's own error
        held.cancel()
        raise RuntimeError(f"the held stream sent nothing within {_STREAM_WAIT_S}s")
    return StreamsState(key, token, held_job, held)


async def streams_traffic(ctx: TrafficContext) -> None:
    """One job followed over SSE streams from its snapshot to its end (see above)."""
    state = ctx.state.get("streams")
    if state is None:
        state = ctx.state["streams"] = await _streams_setup(ctx)
    await _until_streams_open(ctx, 1)  # the held stream; last round's have gone
    job = await _submit(ctx, state.key, STREAM_PLATFORM, [f"stream-{ctx.round}-{n}" for n in "ab"])
    async with _sse(ctx, state, job) as a_events:
        await _next(a_events, "snapshot")
        await _complete_one(ctx, state)
        progress = await _next(a_events, "job.progress")
        async with _sse(ctx, state, job, progress.id) as b_events:
            await _refused(ctx, state, job, "too-many-followers")
            async with _sse(ctx, state, state.held_job) as c_events:
                await _next(c_events, "snapshot")
                await _refused(ctx, state, job, "too-many-streams")
            await _complete_one(ctx, state)
            await _next(b_events, "job.progress")
            await _next(b_events, "job.completed")
            leftover = [event async for event in b_events]
            if leftover:
                raise RuntimeError(f"the stream went on after job.completed: {leftover}")
    # A (not read any more) ended with the job too, like B.
    await _until_streams_open(ctx, 1)
    async with _sse(ctx, state, job, UNKNOWN_EVENT_ID) as d_events:
        resync = await _next(d_events, "resync")
        if json.loads(resync.data)["state"] != "completed":
            raise RuntimeError(f"resync of a completed job: {resync.data[:300]}")
        leftover = [event async for event in d_events]
        if leftover:
            raise RuntimeError(f"the stream of a finished job went on: {leftover}")


async def streams_stop(ctx: TrafficContext) -> None:
    """Cancel the held job: its stream sends job.cancelled and ends."""
    state: StreamsState | None = ctx.state.get("streams")
    if state is None:
        return
    try:
        response = await ctx.client.post(
            ctx.url("public", f"/v1/jobs/{state.held_job}/cancel"),
            headers={"X-API-Key": state.key},
        )
        response.raise_for_status()
        types = await asyncio.wait_for(state.held, _STREAM_WAIT_S)
    finally:
        state.held.cancel()
    if types[0] != "snapshot" or types[-1] != "job.cancelled":
        raise RuntimeError(f"the held stream sent {types}")


STREAMS_TRAFFIC: Callable[[TrafficContext], Awaitable[None]] | None = streams_traffic


# --- webhooks -------------------------------------------------------------------------
# Each round completes a one-item job of WEBHOOK_PLATFORM; its job.completed is fanned
# out to three endpoints on a local receiver (loopback, allowed by
# WEBHOOK_ALLOW_PRIVATE_NETWORKS): /ok answers 200 (succeeded, latency), /fail 500
# (failed_retry, and the retries keep the outbox non-empty), /gone 410 (the first
# delivery disables it: endpoints disabled {reason="gone"}, outcome gone). The round
# waits until /ok received the job's delivery (by its payload), never for a set time.
# Not produced: dead (the last retry is hours away) and disabled "failing" (days).

WEBHOOKS_ENV: dict[str, str] = {"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true"}
WEBHOOK_WORKER_ID = "proof-webhook-worker"
_WEBHOOK_WAIT_S = 15.0


class WebhookReceiver:
    """A loopback HTTP server for webhook deliveries: the status is the path's
    (`/ok` 200, `/fail` 500, `/gone` 410); the job ids of `/ok` deliveries are kept."""

    STATUSES: dict[str, tuple[int, bytes]] = {
        "/ok": (200, b"OK"),
        "/fail": (500, b"Internal Server Error"),
        "/gone": (410, b"Gone"),
    }

    def __init__(self) -> None:
        self.port = 0
        self.received: dict[str, int] = {}
        self.ok_jobs: set[str] = set()
        self._server: asyncio.Server | None = None

    def url(self, path: str) -> str:
        """The endpoint URL of one behaviour."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            path = request_line.split(" ")[1] if " " in request_line else ""
            length = 0
            for line in lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip() or 0)
            body = await reader.readexactly(length) if length else b""
            self.received[path] = self.received.get(path, 0) + 1
            status, reason = self.STATUSES.get(path, (404, b"Not Found"))
            if status == 200:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self.ok_jobs.add(json.loads(body)["data"]["job_id"])
            writer.write(
                b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                % (status, reason)
            )
            await writer.drain()
        writer.close()

    async def start(self) -> None:
        """Serve on a free loopback port (until `stop`)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class WebhooksState:
    """What the webhooks source seeded: a key, a worker token, the receiver."""

    key: str
    token: str
    receiver: WebhookReceiver


async def _webhooks_setup(ctx: TrafficContext) -> WebhooksState:
    """A key with three endpoints (200, 500, 410) on a started receiver, and a token."""
    from gateway.work.plane import token_store
    from gateway.work.tokens import Role

    key = (await create_api_keys(ctx, ("enterprise",)))["enterprise"]
    async with gateway_resources(ctx) as resources:
        token = await token_store(resources).create(
            audience="parcel", name="proof-webhooks-worker", role=Role.WORKER, actor=proof_actor()
        )
    receiver = WebhookReceiver()
    await receiver.start()
    for path in WebhookReceiver.STATUSES:
        response = await ctx.client.post(
            ctx.url("public", "/v1/webhooks"),
            json={"url": receiver.url(path), "events": ["job.completed"]},
            headers={"X-API-Key": key},
        )
        if response.status_code != 201:
            await receiver.stop()
            raise RuntimeError(f"webhook endpoint {path}: {response.status_code} {response.text}")
    return WebhooksState(key, token, receiver)


async def _complete_webhook_task(ctx: TrafficContext, state: WebhooksState) -> None:
    """Lease the round's WEBHOOK_PLATFORM task on the parcel port and post its success."""
    await _complete_parcel_task(ctx, state.token, WEBHOOK_WORKER_ID, WEBHOOK_PLATFORM)


async def webhooks_traffic(ctx: TrafficContext) -> None:
    """One job completed and its job.completed delivered (see above)."""
    state: WebhooksState | None = ctx.state.get("webhooks")
    if state is None:
        state = ctx.state["webhooks"] = await _webhooks_setup(ctx)
    parcel = f"webhook-{ctx.round}"
    # Watched: its first result is a parcel.changed (the parcel-changes panel).
    watched = await ctx.client.post(
        ctx.url("public", "/v1/watches"),
        json={"platform": WEBHOOK_PLATFORM, "parcel_ids": [parcel]},
        headers={"X-API-Key": state.key},
    )
    if watched.status_code != 201:
        raise RuntimeError(f"watch of {parcel}: {watched.status_code} {watched.text}")
    job = await _submit(ctx, state.key, WEBHOOK_PLATFORM, [parcel])
    await _complete_webhook_task(ctx, state)
    deadline = time.monotonic() + _WEBHOOK_WAIT_S
    while job not in state.receiver.ok_jobs:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"job {job}'s webhook did not arrive within {_WEBHOOK_WAIT_S}s "
                f"(received: {state.receiver.received})"
            )
        await asyncio.sleep(0.05)
    # The change is counted (its result committed before the job's webhook was sent);
    # deleting the watch keeps the key under its tier's max_watches however many rounds.
    watch_url = ctx.url("public", f"/v1/watches/{watched.json()['id']}")
    deleted = await ctx.client.delete(watch_url, headers={"X-API-Key": state.key})
    deleted.raise_for_status()


async def _webhook_samples(ctx: TrafficContext) -> dict[tuple[str, str], float]:
    """The webhook counters (public port) and the parcel-change ones (parcel port)
    right now: (name, label value) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[tuple[str, str], float] = {}
    for port in ("public", "parcel"):
        text = (await ctx.client.get(ctx.url(port, "/metrics"))).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith(("gateway_webhook_", "gateway_parcel_change")):
                    label = sample.labels.get("outcome") or sample.labels.get("reason") or ""
                    found[(sample.name, label)] = float(sample.value)
    return found


async def webhooks_stop(ctx: TrafficContext) -> None:
    """Check the rounds were counted (succeeded, failed_retry, gone, one endpoint
    disabled as gone, deliveries created), then stop the receiver (the 500 endpoint's
    retries fail to connect from then on)."""
    state: WebhooksState | None = ctx.state.get("webhooks")
    if state is None:
        return
    try:
        samples = await _webhook_samples(ctx)
        wanted = [
            ("gateway_webhook_deliveries_total", "succeeded"),
            ("gateway_webhook_deliveries_total", "failed_retry"),
            ("gateway_webhook_deliveries_total", "gone"),
            ("gateway_webhook_endpoints_disabled_total", "gone"),
            ("gateway_webhook_fanout_total", ""),
            ("gateway_webhook_attempt_seconds_count", ""),
            ("gateway_parcel_changes_total", ""),
        ]
        unmoved = [series for series in wanted if not samples.get(series)]
        if unmoved:
            raise RuntimeError(f"webhook series the traffic should have moved: {unmoved}")
    finally:
        await state.receiver.stop()


WEBHOOKS_TRAFFIC: Callable[[TrafficContext], Awaitable[None]] | None = webhooks_traffic


# --- seeding --------------------------------------------------------------------------
# Through the gateway's own services on the proof's database and Redis, in this process:
# a `gateway tokens|keys create` subprocess per credential costs seconds of start-up.


@contextlib.asynccontextmanager
async def gateway_resources(ctx: TrafficContext) -> AsyncIterator[Resources]:
    """Shared resources on the gateway's backends, with the proof's settings."""
    from gateway.core.resources import BackendUrls, open_resources
    from gateway.core.settings import load_settings

    settings = load_settings(
        environment="test",
        redis_url=ctx.redis_url,
        database_url=ctx.database_url,
        redis_key_prefix=ctx.redis_key_prefix,
        tiers_file=PUBLIC_PLANE_ENV["TIERS_FILE"],
    )
    async with open_resources(settings, BackendUrls(ctx.redis_url, ctx.database_url)) as res:
        yield res


async def create_worker_tokens(ctx: TrafficContext) -> dict[str, str]:
    """A producer token (may enqueue and work) per internal port, and the proxies."""
    from gateway.proxy_pool.inventory import add_proxies
    from gateway.work.plane import token_store
    from gateway.work.tokens import Role

    async with gateway_resources(ctx) as resources:
        await add_proxies(resources, PROXY_URLS)
        store = token_store(resources)
        return {
            audience: await store.create(
                audience=audience,
                name=f"proof-producer-{audience}",
                role=Role.PRODUCER,
                actor=proof_actor(),
            )
            for audience in ("parcel", "party")
        }


def proof_actor() -> Actor:
    """Who the proof's seeding acts as in the audit trail."""
    from gateway.audit.actor import Actor

    return Actor(principal="proof:seed", role="admin", request_id="proof-seed")


async def create_api_keys(ctx: TrafficContext, tiers: tuple[str, ...]) -> dict[str, str]:
    """A service API key per tier."""
    from gateway.core.settings.tiers import load_tiers
    from gateway.public.api_keys import ApiKeyService

    async with gateway_resources(ctx) as resources:
        settings = resources.settings
        service = ApiKeyService(
            resources.sessionmaker, load_tiers(settings.tiers_file, settings.default_tier), 0
        )
        return {
            tier: (
                await service.create(
                    name=f"proof {tier}", tier=tier, user_uid=None, actor=proof_actor()
                )
            ).secret
            for tier in tiers
        }


async def seed_quiet(ctx: TrafficContext) -> None:
    """What a quiet system has seen (`prove_dashboard.py --quiet`): one task per internal
    port on one platform, never leased, and one proxy lease there, released `ok`.

    Platforms are not known up front, so the gateway exports a platform's series once
    the queue or the proxy pool has seen it; this is the least history that gives one.
    """
    tokens = ctx.state["worker_tokens"] = await create_worker_tokens(ctx)
    for audience, token in tokens.items():
        task = {"platform": BACKLOG_PLATFORM, "key": "quiet", "payload": {}}
        response = await ctx.client.post(
            ctx.url(audience, "/internal/tasks"),
            json={"tasks": [task]},
            headers={"X-Worker-Token": token},
        )
        response.raise_for_status()
    headers = {"X-Worker-Token": tokens["party"]}
    base = ctx.url("party", "/internal/proxy")
    body = {"worker_id": WORKER_ID, "platform": BACKLOG_PLATFORM}
    leased = await ctx.client.post(f"{base}/lease", json=body, headers=headers)
    leased.raise_for_status()
    release = {
        "worker_id": WORKER_ID,
        "proxy_lease_id": leased.json()["proxy_lease_id"],
        "outcome": "ok",
    }
    (await ctx.client.post(f"{base}/release", json=release, headers=headers)).raise_for_status()


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
        TrafficSource(
            "streams",
            STREAMS_TRAFFIC,
            STREAMS_ENV,
            "jobs followed over SSE: snapshots, live events, resumes, resyncs, cap 429s",
            stop=streams_stop,
        ),
        TrafficSource(
            "webhooks",
            WEBHOOKS_TRAFFIC,
            WEBHOOKS_ENV,
            "a job per round delivered to local receivers answering 200, 500 and 410",
            stop=webhooks_stop,
        ),
    ]
