"""An example parcel worker: leases tasks, "scrapes" them, reports `ParcelResult`s.

The scrape is fake (no network): it optionally leases a proxy for the task's platform,
waits a little as a real request would, and builds a valid `ParcelResult` from the task.
Replace `scrape` with real fetching and parsing; everything else is the worker client.

    export GATEWAY_URL=http://127.0.0.1:8081
    export WORKER_TOKEN=$(gateway tokens create --audience parcel --name example)
    python examples/parcel_worker.py --platforms miami_dade,broward [--use-proxy]

With `--parcels FILE` (JSON Lines, optionally gzipped, as `gateway/demo/data/parcels.jsonl.gz`)
the fake scrape answers from that file for the parcels it lists, as a county site would:
the parcel's fields and its last scrape, with a month's interest (1.5%) on the tax due.
`gateway demo` runs it that way.

Stops cleanly on Ctrl-C / SIGTERM (finishes in-flight tasks, posts their results) and
when an operator runs `gateway workers command --audience parcel terminate --all`.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import logging
import os
import random
import signal
import socket
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from taxlien_worker import Task, TaskContext, TaskFailed, Worker, WorkerClient

STATES = ("FL", "AZ", "IL", "NJ", "CO")


def parcel_result(task: Task, source_url: str) -> dict[str, Any]:
    """A valid ParcelResult for the task (fields derived from its key and payload)."""
    rng = random.Random(task.key)  # noqa: S311 - fake data, not security
    payload = task.payload
    return {
        "parcel_id": task.key,
        "state": payload.get("state", rng.choice(STATES)),
        "county": payload.get("county", "Example County"),
        "platform": task.platform,
        "address": f"{rng.randint(1, 9999)} Main St",
        "owner_name": rng.choice(["Jane Doe", "John Roe", "Acme Holdings LLC"]),
        "assessed_value": f"{rng.randint(20_000, 900_000)}.00",
        "tax_amount_due": f"{rng.randint(100, 40_000)}.{rng.randint(0, 99):02d}",
        "lien_status": rng.choice(["active", "redeemed", "none"]),
        "auction_date": "2027-03-01",
        "source_url": source_url,
        "scraped_at": datetime.now(UTC).isoformat(),
        "extra": {"attempt": task.attempt},
    }


def known_parcels(path: Path) -> dict[str, dict[str, Any]]:
    """The parcels of a JSON Lines file (gzipped when it ends in .gz), by parcel id."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return {p["parcel_id"]: p for p in map(json.loads, f)}


def known_result(parcel: dict[str, Any], task: Task, source_url: str) -> dict[str, Any]:
    """A fresh scrape of a parcel the file knows: its last scrape plus interest."""
    fields = {k: v for k, v in parcel.items() if k != "snapshots"}
    last = parcel["snapshots"][-1]
    due = (Decimal(last["tax_amount_due"]) * Decimal("1.015")).quantize(Decimal("0.01"))
    return {
        **fields,
        "platform": task.platform,
        "tax_amount_due": str(due),
        "lien_status": last["lien_status"],
        "source_url": fields.get("source_url") or source_url,
        "scraped_at": datetime.now(UTC).isoformat(),
        "extra": {"attempt": task.attempt},
    }


async def scrape(
    task: Task,
    ctx: TaskContext,
    *,
    use_proxy: bool,
    delay_s: float,
    known: dict[str, dict[str, Any]],
) -> Any:
    """The fake scrape: where a real worker fetches and parses the parcel page."""
    url = str(task.payload.get("url") or f"https://{task.platform}.example/parcels/{task.key}")
    if not url.startswith(("http://", "https://")):
        raise TaskFailed("payload url is not http(s)", retryable=False)
    if use_proxy:
        async with ctx.proxy(wait_s=30) as proxy:
            # A real worker: httpx.AsyncClient(proxy=proxy.url).get(url); on a 403/429
            # page call `await proxy.rotate("banned", status)` and try again.
            await asyncio.sleep(delay_s)
            _ = proxy.url
    else:
        await asyncio.sleep(delay_s)
    if task.key in known:
        return known_result(known[task.key], task, url)
    return parcel_result(task, url)


async def main() -> int:
    """Run one worker until a signal or a terminate command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--gateway",
        default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:8081"),
        help="the parcel port's URL (GATEWAY_URL)",
    )
    parser.add_argument(
        "--worker-id",
        default=os.environ.get("WORKER_ID", socket.gethostname()),
        help="this worker's id (WORKER_ID; default: the host name)",
    )
    parser.add_argument(
        "--platforms",
        default=os.environ.get("PLATFORMS", "alpha"),
        help="comma-separated platforms to lease (PLATFORMS)",
    )
    parser.add_argument("--concurrency", type=int, default=10, help="tasks in flight at once")
    parser.add_argument("--delay", type=float, default=0.2, help="fake scrape time (s)")
    parser.add_argument(
        "--wait",
        type=float,
        default=20.0,
        help="long-poll wait (s); stopping waits for the last poll to answer",
    )
    parser.add_argument("--use-proxy", action="store_true", help="lease a proxy per task")
    parser.add_argument(
        "--parcels", type=Path, default=None, help="JSON Lines of parcels to answer from"
    )
    args = parser.parse_args()
    known = known_parcels(args.parcels) if args.parcels else {}
    token = os.environ.get("WORKER_TOKEN")
    if not token:
        parser.error("set WORKER_TOKEN (gateway tokens create --audience parcel ...)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def handler(task: Task, ctx: TaskContext) -> Any:
        return await scrape(task, ctx, use_proxy=args.use_proxy, delay_s=args.delay, known=known)

    async with WorkerClient(args.gateway, token, args.worker_id) as client:
        worker = Worker(
            client,
            args.platforms.split(","),
            handler,
            concurrency=args.concurrency,
            wait_s=args.wait,
            version="example-1",
        )
        stats = await worker.run(stop)
    logging.info(
        "stopped: leased=%d outcomes=%s lost=%d unacknowledged=%d",
        stats.leased,
        dict(stats.outcomes),
        stats.lost,
        len(stats.unacknowledged),
    )
    return 1 if stats.unacknowledged else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
