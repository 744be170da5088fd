"""Follower caps across replicas: `SSE_MAX_PER_JOB` and `SSE_MAX_PER_PRINCIPAL`.

Each cap is a Redis sorted set of lease ids scored by when the lease lapses
(`lua/open.lua` takes places in several sets at once, or none). A process refreshes
the leases of its live connections in one pipelined round trip per
`LEASE_S / 3` (not one timer per connection) and removes a lease when its connection
ends (in batches: the streams of a finished job all end at once), so a process that
dies frees its places after at most `LEASE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from gateway.core.errors import TooManyRequests
from gateway.kit.lua import register_scripts
from gateway.kit.outage import REDIS_FAILURE, redis_guard

LEASE_S = 60.0
REFRESH_S = LEASE_S / 3


class TooManyFollowers(TooManyRequests):
    """A job already has `SSE_MAX_PER_JOB` followers."""

    slug = "too-many-followers"
    title = "Too many streams of this job"


class TooManyStreams(TooManyRequests):
    """The caller already holds `SSE_MAX_PER_PRINCIPAL` streams open."""

    slug = "too-many-streams"
    title = "Too many open streams"


@dataclass(frozen=True)
class Place:
    """One set to take a place in, with its cap and the error when it is full."""

    key: str
    cap: int
    full: TooManyRequests


@dataclass(eq=False)
class Lease:
    """Places one connection (or one subscription) holds, refreshed while it lives."""

    member: str
    keys: tuple[str, ...]
    released: bool = field(default=False)


class StreamCaps:
    """Takes, refreshes and gives back follower places."""

    def __init__(self, redis: Redis, prefix: str, *, per_job: int, per_principal: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.per_job = per_job
        self.per_principal = per_principal
        self._open = register_scripts(redis, "gateway.streams", ["open"])["open"]
        self._leases: set[Lease] = set()
        self._returned: list[Lease] = []
        self._returner: asyncio.Task[None] | None = None

    def job_place(self, job_id: str) -> Place:
        """A follower place of `job_id`."""
        return Place(
            f"{self.prefix}streams:job:{job_id}",
            self.per_job,
            TooManyFollowers(
                f"Job {job_id} already has {self.per_job} live streams: close one, "
                "or follow it over one WebSocket connection",
                headers={"Retry-After": "5"},
            ),
        )

    def principal_place(self, owner_id: str) -> Place:
        """An open-stream place of the caller `owner_id`."""
        return Place(
            f"{self.prefix}streams:owner:{owner_id}",
            self.per_principal,
            TooManyStreams(
                f"You already hold {self.per_principal} live streams open: close one, or "
                "follow several jobs over one WebSocket connection",
                headers={"Retry-After": "5"},
            ),
        )

    async def take(self, places: Sequence[Place]) -> Lease:
        """A lease on every place, or the first full place's 429 (nothing taken)."""
        member = secrets.token_hex(8)
        now_ms = int(time.time() * 1000)
        with redis_guard():
            full: int = await self._open(
                keys=[p.key for p in places],
                args=[now_ms, now_ms + int(LEASE_S * 1000), member, *[p.cap for p in places]],
            )
        if full:
            raise places[full - 1].full
        lease = Lease(member, tuple(p.key for p in places))
        self._leases.add(lease)
        return lease

    async def give_back(self, lease: Lease) -> None:
        """Free the lease's places (idempotent; a failure lets the lease lapse).

        Returned in batches: when a job finishes, all its streams end in the same
        moment, and one pipeline per stream was a fifth of a busy replica's time
        (`bench/README.md`). The places are free one round trip later.
        """
        if lease.released:
            return
        lease.released = True
        self._leases.discard(lease)
        self._returned.append(lease)
        if self._returner is None or self._returner.done():
            self._returner = asyncio.create_task(self._return_batches(), name="stream-leases")

    async def _return_batches(self) -> None:
        # One turn of the loop first, so the connections ending with this one join in.
        await asyncio.sleep(0)
        while self._returned:
            batch, self._returned = self._returned, []
            members: dict[str, list[str]] = {}
            for lease in batch:
                for key in lease.keys:
                    members.setdefault(key, []).append(lease.member)
            # Redis down: the leases lapse on their own within LEASE_S.
            with contextlib.suppress(*REDIS_FAILURE):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key, gone in members.items():
                        pipe.zrem(key, *gone)
                    await pipe.execute()

    async def drain(self) -> None:
        """Wait until every lease given back is freed in Redis (at shutdown)."""
        if self._returner is not None:
            with contextlib.suppress(Exception):
                await self._returner

    async def refresh(self) -> None:
        """Extend every live lease of this process (one round trip)."""
        leases = list(self._leases)
        if not leases:
            return
        lapse = int((time.time() + LEASE_S) * 1000)
        # One ZADD and one PEXPIREAT per set, not per lease: every SSE stream of a caller
        # is in the caller's set, so per lease that set's expiry was re-set once per
        # stream (5,000 streams: 20,000 commands per refresh instead of about 1,000).
        members: dict[str, dict[str, int]] = {}
        for lease in leases:
            for key in lease.keys:
                members.setdefault(key, {})[lease.member] = lapse
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, scores in members.items():
                pipe.zadd(key, scores, xx=True)
                pipe.pexpireat(key, lapse)
            await pipe.execute()
