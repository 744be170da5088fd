"""An example Celery worker for gateway-routed tasks: `scrape_parcel` (a fake scrape).

The gateway sends each Celery-routed task with the kwargs below and attaches callbacks
that bring the return value back to it (README, "Celery routing"): the task only returns
what a HTTP worker would post for the item, without the ids. Failures are *returned*
(`{"status": "failed", "error": {...}}`), not raised, so the message and `retryable`
reach the gateway; an exception raised by the task counts as a retryable failure.
Do not use Celery's own retries: the gateway retries with backoff and dead-letters.

    export CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672//
    celery -A examples.celery_worker worker -Q parcels --concurrency 4

Test hooks in the payload (the fake scrape has no site to misbehave): `delay_s` (sleep
that long, the first time the key starts), `hold` (wait, up to a minute, until the file
`<EXAMPLE_STARTED_DIR>/<hold>` exists), `fail` (`retryable` | `fatal`: return a
failure; `raise`: raise), and `EXAMPLE_STARTED_DIR` (touch `<dir>/<key>` when a task
starts).
"""

from __future__ import annotations

import json
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import Celery

STATES = ("FL", "AZ", "IL", "NJ", "CO")

app = Celery("gateway_example", broker=os.environ.get("CELERY_BROKER_URL", "amqp://127.0.0.1//"))
app.conf.update(
    broker_transport_options=json.loads(os.environ.get("CELERY_BROKER_TRANSPORT_OPTIONS", "{}")),
    task_serializer="json",
    accept_content=["json"],
    # Results travel through the gateway's callbacks, not a result backend.
    task_ignore_result=True,
    # At least once: a task is acknowledged after it ran, and a worker that dies
    # mid-task gives its message back; the gateway commits a result once whatever happens.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


def parcel_result(platform: str, key: str, payload: dict[str, Any], attempt: int) -> dict[str, Any]:
    """A valid ParcelResult for the task (fields derived from its key and payload)."""
    rng = random.Random(key)  # noqa: S311 - fake data, not security
    return {
        "parcel_id": key,
        "state": payload.get("state", rng.choice(STATES)),
        "county": payload.get("county", "Example County"),
        "platform": platform,
        "address": f"{rng.randint(1, 9999)} Main St",
        "owner_name": rng.choice(["Jane Doe", "John Roe", "Acme Holdings LLC"]),
        "assessed_value": f"{rng.randint(20_000, 900_000)}.00",
        "tax_amount_due": f"{rng.randint(100, 40_000)}.{rng.randint(0, 99):02d}",
        "lien_status": rng.choice(["active", "redeemed", "none"]),
        "auction_date": "2027-03-01",
        "source_url": f"https://{platform}.example/parcels/{key}",
        "scraped_at": datetime.now(UTC).isoformat(),
        "extra": {"attempt": attempt, "via": "celery"},
    }


@app.task(name="scrape_parcel")
def scrape_parcel(
    task_id: str,
    lease_id: str,
    audience: str,
    platform: str,
    key: str,
    payload: dict[str, Any],
    attempt: int,
) -> dict[str, Any]:
    """Fake-scrape one parcel; return the result item the gateway commits."""
    started = os.environ.get("EXAMPLE_STARTED_DIR")
    again = False
    if started:
        marker = Path(started, key)
        again = marker.exists()
        marker.touch()
    if not again:  # a redelivered task (worker killed mid-task) runs at once
        time.sleep(float(payload.get("delay_s", 0.01)))
    if started and payload.get("hold"):
        release = Path(started, str(payload["hold"]))
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    fail = payload.get("fail")
    if fail == "raise":
        raise RuntimeError("county site answered 502")
    if fail in ("retryable", "fatal"):
        return {
            "status": "failed",
            "error": {"message": f"county site failed ({fail})", "retryable": fail == "retryable"},
        }
    return {"status": "succeeded", "data": parcel_result(platform, key, payload, attempt)}
