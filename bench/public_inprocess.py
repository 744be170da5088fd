"""CPU per request of the public app called in-process (ASGI, no HTTP server, no wrk).

    .venv/bin/python bench/public_inprocess.py [--concurrency 16] [--requests 3000]

Builds the real public app on real Redis and PostgreSQL (a database `bench_inprocess`
next to `DATABASE_URL`, migrated, kept for the next run; a fresh Redis key prefix,
deleted afterwards), issues an API key on the `bench` tier, stores a cache entry for
`/v1/properties/BENCH-0001`, then calls the app in a loop and divides
`time.process_time()` by the number of requests: cache-hit property requests (auth,
limiter script with the cached entry, headers, metrics) and `/health` for reference.
`--concurrency` runs that many request loops at once, as a loaded server would; the
limiter's calls of one loop turn then share a Redis round trip. The figure includes the
kernel time of this process's Redis socket calls but not Redis's own CPU. `--profile`
prints cProfile's top functions instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import uvloop
from sqlalchemy.engine import make_url

PATH = "/v1/properties/BENCH-0001"
DATABASE = "bench_inprocess"


def _env() -> None:
    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    tiers = Path(tempfile.mkdtemp()) / "tiers.json"
    limits = {"rate_per_s": 100000, "burst": 1000000, "daily_quota": 10**12, "max_page_size": 25}
    tiers.write_text(json.dumps({"tiers": {"bench": limits}}))
    os.environ.update(
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"),
        DATABASE_URL=make_url(base).set(database=DATABASE).render_as_string(False),
        REDIS_KEY_PREFIX=f"bip{uuid.uuid4().hex[:8]}:",
        ENVIRONMENT="test",
        LOG_LEVEL="warning",
        TIERS_FILE=str(tiers),
        DEFAULT_TIER="bench",
        PARSER_SERVICE_URL="http://127.0.0.1:9",  # never called: every request is a hit
    )


async def _ensure_database(url: str) -> None:
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(admin.render_as_string(False))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()


async def _run(args: argparse.Namespace) -> None:
    from gateway.apps.public import create_public_app
    from gateway.audit.actor import cli_actor
    from gateway.core.logs import configure_logging
    from gateway.core.resources import BackendUrls, open_resources
    from gateway.core.settings import LogFormat, load_settings
    from gateway.migrations.runner import upgrade_to_head
    from gateway.public.cache import Entry, cache_key

    settings = load_settings()
    await _ensure_database(settings.database_url)
    await asyncio.to_thread(upgrade_to_head, settings.database_url)
    configure_logging("warning", LogFormat.JSON)
    async with open_resources(
        settings, BackendUrls(settings.redis_url, settings.database_url)
    ) as resources:
        app = create_public_app(resources)
        plane = app.state.planes["public"]
        issued = await plane.api_keys.create(
            name="inprocess", tier="bench", user_uid=None, actor=cli_actor()
        )
        key = issued.secret
        body = json.dumps({"id": "BENCH-0001", "pad": "x" * 300}).encode()
        entry = Entry(200, body, "application/json", '"bench"', time.time(), 3600)
        cache = resources.key("cache", cache_key(PATH, (), "bench"))
        await resources.redis.set(cache, entry.dumps(), ex=3600)
        statuses: list[int] = []
        x_cache: dict[bytes, int] = {}

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
                for name, value in message["headers"]:
                    if name == b"x-cache":
                        x_cache[value] = x_cache.get(value, 0) + 1

        def scope(path: str) -> dict[str, Any]:
            return {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
                "server": ("127.0.0.1", 80),
                "headers": [(b"host", b"x"), (b"x-api-key", key.encode())],
            }  # fmt: skip

        async def loop(path: str, n: int) -> None:
            for _ in range(n):
                await app(scope(path), receive, send)

        async def cpu_us(path: str, n: int) -> float:
            started = time.process_time()
            per = max(1, n // args.concurrency)
            await asyncio.gather(*(loop(path, per) for _ in range(args.concurrency)))
            return (time.process_time() - started) / (per * args.concurrency) * 1e6

        async with app.router.lifespan_context(app):
            await cpu_us(PATH, 300)  # warm-up
            assert set(statuses) == {200}, statuses
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
                await cpu_us(PATH, args.requests)
                profile.disable()
                pstats.Stats(profile).sort_stats(args.sort).print_stats(40)
            else:
                health = [await cpu_us("/health", args.requests) for _ in range(args.rounds)]
                route = [await cpu_us(PATH, args.requests) for _ in range(args.rounds)]
                assert set(statuses) == {200}
                assert set(x_cache) == {b"HIT"}, x_cache  # the figure is for cache hits only
                print(f"concurrency {args.concurrency}, {args.rounds} rounds of {args.requests}")
                print(f"/health          {statistics.median(health):7.1f} µs CPU/request (median)")
                print(f"property (HIT)   {statistics.median(route):7.1f} µs CPU/request (median)")
                print(f"  min-max        {min(route):7.1f} - {max(route):.1f}")
        stale = [k async for k in resources.redis.scan_iter(match=resources.key("*"))]
        if stale:
            await resources.redis.delete(*stale)


def main() -> None:
    """Parse the arguments and run the measurement on uvloop (as the server does)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="cProfile order, e.g. tottime")
    args = parser.parse_args()
    _env()
    uvloop.run(_run(args))


if __name__ == "__main__":
    main()
