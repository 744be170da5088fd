"""A lease belongs to its holder (token id, worker id): nobody else can settle or extend it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from structlog.testing import CapturingLogger

from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.work import holder as holder_module
from gateway.work.plane import WorkerPlane
from tests.support.work import (
    enqueue,
    failed,
    lease,
    make_token,
    parcel_data,
    post_results,
    succeeded,
    work_app,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def refusal_log(monkeypatch: pytest.MonkeyPatch) -> CapturingLogger:
    """The refusal logger, recording its calls."""
    logger = CapturingLogger()
    monkeypatch.setattr(holder_module, "log", logger)
    return logger


def _refusals(logger: CapturingLogger) -> list[dict[str, Any]]:
    return [c.kwargs for c in logger.calls if c.args == ("not_lease_holder",)]


async def _task_state(resources: Resources, task_id: str) -> dict[str, Any]:
    task = await WorkerPlane(resources, "parcel").queue.task(task_id)
    assert task is not None
    return task


async def _history(resources: Resources) -> int:
    async with resources.sessionmaker() as session:
        count = await session.execute(sa.text("SELECT count(*) FROM parcel_history"))
        return int(count.scalar_one())


async def _beat(
    client: httpx.AsyncClient, token: str, worker_id: str, lease_ids: list[str]
) -> dict[str, Any]:
    response = await client.post(
        "/internal/heartbeat",
        json={"worker_id": worker_id, "platforms": ["alpha"], "lease_ids": lease_ids},
        headers={"X-Worker-Token": token},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_results_from_another_token_are_refused_and_change_nothing(
    resources: Resources, parcel_client: httpx.AsyncClient, refusal_log: CapturingLogger
) -> None:
    owner = await make_token(resources)
    intruder = await make_token(resources, role="worker")
    await enqueue(
        parcel_client,
        owner,
        [{"platform": "alpha", "key": "p-1"}, {"platform": "alpha", "key": "p-2"}],
    )
    first, second = await lease(parcel_client, owner, worker_id="w1", limit=2)

    # Same worker id, other token: a succeeded result and a dead-lettering failure.
    response = await post_results(
        parcel_client,
        intruder,
        [succeeded(first, parcel_data("p-1")), failed(second, retryable=False)],
        worker_id="w1",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (0, 2)
    assert [(r["outcome"], r.get("reason")) for r in body["results"]] == [
        ("rejected", "not_lease_holder"),
        ("rejected", "not_lease_holder"),
    ]
    assert await _history(resources) == 0
    for task in (first, second):
        state = await _task_state(resources, task["task_id"])
        assert (state["state"], state["lease_id"], state["errors"]) == (
            "leased",
            task["lease_id"],
            [],
        )
    # Logged once for the request, counted per refused lease.
    (logged,) = _refusals(refusal_log)
    assert logged["operation"] == "result"
    assert logged["worker_id"] == "w1"
    assert logged["refused"] == 2
    assert sorted(logged["lease_ids"]) == sorted([first["lease_id"], second["lease_id"]])
    metrics = (await parcel_client.get("/metrics")).text
    assert (
        'gateway_lease_holder_refusals_total{audience="parcel",operation="result"} 2.0' in metrics
    )

    # The holder itself still completes both.
    mine = await post_results(
        parcel_client,
        owner,
        [succeeded(first, parcel_data("p-1")), failed(second, retryable=False)],
        worker_id="w1",
    )
    assert mine.json()["accepted"] == 2
    assert await _history(resources) == 1


async def test_results_from_another_worker_id_of_the_same_token_are_refused(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    await enqueue(parcel_client, token, [{"platform": "alpha", "key": "p-1"}])
    (task,) = await lease(parcel_client, token, worker_id="w1", limit=1)
    other = await post_results(
        parcel_client, token, [succeeded(task, parcel_data("p-1"))], worker_id="w2"
    )
    assert other.json()["results"][0]["reason"] == "not_lease_holder"
    assert await _history(resources) == 0
    assert (await _task_state(resources, task["task_id"]))["state"] == "leased"


async def test_a_heartbeat_of_another_holder_does_not_extend_the_lease(
    resources: Resources, parcel_client: httpx.AsyncClient, refusal_log: CapturingLogger
) -> None:
    owner = await make_token(resources)
    intruder = await make_token(resources, role="worker")
    await enqueue(parcel_client, owner, [{"platform": "alpha", "key": "p-1"}])
    (task,) = await lease(parcel_client, owner, worker_id="w1", limit=1)
    expiry = (await _task_state(resources, task["task_id"]))["lease_exp"]

    for token, worker_id in ((intruder, "w1"), (owner, "w2")):
        beat = await _beat(parcel_client, token, worker_id, [task["lease_id"], "unknown"])
        assert beat["extended"] == []
        assert beat["lost"] == [task["lease_id"], "unknown"]
        assert beat["not_holder"] == [task["lease_id"]]
        # Not extended: the stored expiry is the one written at lease time.
        assert (await _task_state(resources, task["task_id"]))["lease_exp"] == expiry
    assert [c["operation"] for c in _refusals(refusal_log)] == ["heartbeat", "heartbeat"]
    metrics = (await parcel_client.get("/metrics")).text
    assert (
        'gateway_lease_holder_refusals_total{audience="parcel",operation="heartbeat"} 2.0'
        in metrics
    )

    mine = await _beat(parcel_client, owner, "w1", [task["lease_id"]])
    assert (mine["extended"], mine["lost"], mine["not_holder"]) == ([task["lease_id"]], [], [])


async def test_a_restarted_worker_with_the_same_token_and_id_continues(
    settings: Settings,
) -> None:
    # Two gateway instances (own pools, own token caches) on the same Redis and
    # PostgreSQL: the binding lives in Redis, not in the process that granted the lease,
    # so a worker that restarts may come back on a fresh connection, through any
    # replica, and carries on under the same token and worker id.
    async with work_app(settings) as (resources, before), work_app(settings) as (_, after):
        token = await make_token(resources)
        await enqueue(before, token, [{"platform": "alpha", "key": "p-1"}])
        (task,) = await lease(before, token, worker_id="w1", limit=1)
        beat = await _beat(after, token, "w1", [task["lease_id"]])
        assert beat["extended"] == [task["lease_id"]]
        done = await post_results(
            after, token, [succeeded(task, parcel_data("p-1"))], worker_id="w1"
        )
        assert done.json()["accepted"] == 1


async def test_a_lease_granted_before_binding_is_accepted_from_its_worker(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    # A lease written by a replica still running the previous version has no token id:
    # it stays usable (by worker id for heartbeats) until it ends, so a rolling upgrade
    # does not throw away the work in flight.
    token = await make_token(resources)
    other = await make_token(resources, role="worker")
    await enqueue(parcel_client, token, [{"platform": "alpha", "key": "p-1"}])
    (task,) = await lease(parcel_client, token, worker_id="w1", limit=1)
    queue = WorkerPlane(resources, "parcel").queue
    await resources.redis.hdel(queue.key("t", task["task_id"]), "token_id")

    beat = await _beat(parcel_client, other, "w1", [task["lease_id"]])
    assert beat["extended"] == [task["lease_id"]]
    stranger = await _beat(parcel_client, other, "w2", [task["lease_id"]])
    assert stranger["not_holder"] == [task["lease_id"]]
    done = await post_results(parcel_client, other, [succeeded(task, parcel_data("p-1"))])
    assert done.json()["accepted"] == 1
