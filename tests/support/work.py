"""Helpers for worker-plane tests: tokens, tasks and valid results."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from gateway.core.audience import Audience
from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import Settings
from gateway.work.plane import token_store
from gateway.work.queue import WorkQueue
from gateway.work.tokens import Role
from tests.support.audit import TEST_ACTOR

_names = itertools.count()


async def make_token(resources: Resources, audience: str = "parcel", role: str = "producer") -> str:
    """Create a token directly in the store; returns the secret."""
    return await token_store(resources).create(
        audience=audience,
        name=f"test-{audience}-{role}-{next(_names)}",
        role=Role(role),
        actor=TEST_ACTOR,
    )


def parcel_data(parcel_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid `ParcelResult` document."""
    data: dict[str, Any] = {
        "parcel_id": parcel_id,
        "state": "FL",
        "county": "Miami-Dade",
        "platform": "alpha",
        "address": "1 Main St",
        "owner_name": "Jane Doe",
        "assessed_value": "125000.00",
        "tax_amount_due": 1234.5,
        "lien_status": "active",
        "auction_date": "2027-03-01",
        "source_url": "https://county.example/parcels/" + parcel_id,
        "scraped_at": datetime.now(UTC).isoformat(),
        "extra": {"zoning": "R1"},
    }
    data.update(overrides)
    return data


def party_data(party_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid `PartyResult` document."""
    data: dict[str, Any] = {
        "party_id": party_id,
        "name": "Acme Holdings LLC",
        "kind": "organization",
        "platform": "alpha",
        "addresses": [
            {"line1": "2 Side St", "city": "Miami", "state": "FL", "postal_code": "33101"}
        ],
        "parcel_ids": ["p-1", "p-2"],
        "documents": [
            {
                "document_id": "d-1",
                "type": "deed",
                "recorded_date": "2020-05-01",
                "url": "https://records.example/d-1",
            }
        ],
        "scraped_at": datetime.now(UTC).isoformat(),
    }
    data.update(overrides)
    return data


async def enqueue(
    client: httpx.AsyncClient, token: str, tasks: list[dict[str, Any]]
) -> dict[str, Any]:
    """POST /internal/tasks and return the JSON answer (asserting 200)."""
    response = await client.post(
        "/internal/tasks", json={"tasks": tasks}, headers={"X-Worker-Token": token}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def lease(
    client: httpx.AsyncClient,
    token: str,
    *,
    worker_id: str = "w1",
    platforms: str = "alpha",
    limit: int = 10,
    wait: float = 0,
) -> list[dict[str, Any]]:
    """GET /internal/work and return the leased tasks (asserting 200)."""
    response = await client.get(
        "/internal/work",
        params={"worker_id": worker_id, "platforms": platforms, "limit": limit, "wait": wait},
        headers={"X-Worker-Token": token},
    )
    assert response.status_code == 200, response.text
    tasks: list[dict[str, Any]] = response.json()["tasks"]
    return tasks


async def post_results(
    client: httpx.AsyncClient, token: str, results: list[dict[str, Any]], worker_id: str = "w1"
) -> httpx.Response:
    """POST /internal/results."""
    return await client.post(
        "/internal/results",
        json={"worker_id": worker_id, "results": results},
        headers={"X-Worker-Token": token},
    )


def succeeded(task: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """A succeeded result item for a leased task."""
    return {
        "task_id": task["task_id"],
        "lease_id": task["lease_id"],
        "status": "succeeded",
        "data": data,
    }


def failed(task: dict[str, Any], message: str = "boom", retryable: bool = True) -> dict[str, Any]:
    """A failed result item for a leased task."""
    return {
        "task_id": task["task_id"],
        "lease_id": task["lease_id"],
        "status": "failed",
        "error": {"message": message, "retryable": retryable},
    }


@contextlib.asynccontextmanager
async def work_app(
    settings: Settings, audience: Audience = Audience.PARCEL, **overrides: Any
) -> AsyncIterator[tuple[Resources, httpx.AsyncClient]]:
    """Resources and an in-process client of a worker port, with settings overrides."""
    from tests.conftest import FACTORIES, app_client

    tuned = settings.model_copy(update=overrides)
    assert tuned.redis_url is not None
    assert tuned.database_url is not None
    async with (
        open_resources(tuned, BackendUrls(tuned.redis_url, tuned.database_url)) as resources,
        app_client(FACTORIES[audience](resources)) as client,
    ):
        yield resources, client


async def reap_until_reclaimed(queue: WorkQueue, count: int) -> None:
    """Run reaper passes until `count` expired leases were requeued (generous deadline)."""
    reclaimed = 0
    deadline = time.monotonic() + 30
    while reclaimed < count:
        assert time.monotonic() < deadline, f"only {reclaimed} of {count} leases reclaimed"
        reclaimed += sum(c.count for c in (await queue.reap()).counts if c.kind == "retry")
        await asyncio.sleep(0.01)


def metric_value(text: str, name: str, **labels: str) -> float:
    """One sample of a Prometheus exposition (0 when absent); labels in any order."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # exposition sorts them
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
