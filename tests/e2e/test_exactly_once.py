"""A gateway killed (SIGKILL) between committing a result batch and releasing its leases:
with a second replica serving the retries, every task is still written and counted once.

Replica A runs with `FAULT_INJECT=exit_after_commit`, so it kills itself at exactly that
point. Half of the batch is then retried on replica B with the same leases; the other
half is abandoned, its leases expire and B's reaper requeues the tasks, which a worker
polling B must never be handed again.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.work.plane import WorkerPlane
from tests.support.gateway_process import GatewayProcess, replica_env, start_gateway
from tests.support.work import make_token, metric_value, parcel_data, succeeded

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

KILLED = 20  # tasks in the batch replica A commits and never releases
NORMAL = 5  # tasks done on replica B the ordinary way


@pytest.fixture
def replicas(settings: Settings, tmp_path: Path) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    """Replica A (dies after its first commit) and replica B, sharing Redis and PostgreSQL."""
    env = replica_env(settings)
    a = start_gateway(tmp_path, {**env, "FAULT_INJECT": "exit_after_commit"})
    b = start_gateway(tmp_path, env)
    try:
        a.wait_ready()
        b.wait_ready()
        yield a, b
    finally:
        a.stop(signal.SIGKILL)
        assert b.stop() == 0, b.output()


async def _lease(client: httpx.AsyncClient, worker: str, wait: float = 0) -> list[dict[str, Any]]:
    got = await client.get(
        "/internal/work",
        params={"worker_id": worker, "platforms": "alpha", "limit": 50, "wait": wait},
    )
    assert got.status_code == 200, got.text
    tasks: list[dict[str, Any]] = got.json()["tasks"]
    return tasks


async def _post(
    client: httpx.AsyncClient, worker: str, tasks: list[dict[str, Any]]
) -> httpx.Response:
    results = [succeeded(t, parcel_data(t["key"])) for t in tasks]
    return await client.post("/internal/results", json={"worker_id": worker, "results": results})


async def test_a_gateway_killed_between_commit_and_release_writes_each_task_once(
    replicas: tuple[GatewayProcess, GatewayProcess], resources: Resources
) -> None:
    proc_a, proc_b = replicas
    token = await make_token(resources)
    headers = {"X-Worker-Token": token}
    a = httpx.AsyncClient(base_url=proc_a.url("parcel", ""), headers=headers, timeout=30)
    b = httpx.AsyncClient(base_url=proc_b.url("parcel", ""), headers=headers, timeout=30)
    queue = WorkerPlane(resources, "parcel").queue
    try:
        normal = [{"platform": "alpha", "key": f"n{i}"} for i in range(NORMAL)]
        assert (await b.post("/internal/tasks", json={"tasks": normal})).status_code == 200
        done_on_b = await _lease(b, "w0")
        assert (await _post(b, "w0", done_on_b)).json()["accepted"] == NORMAL

        killed = [{"platform": "alpha", "key": f"k{i}"} for i in range(KILLED)]
        assert (await b.post("/internal/tasks", json={"tasks": killed})).status_code == 200
        batch = await _lease(a, "w1")
        assert len(batch) == KILLED
        with pytest.raises(httpx.TransportError):
            await _post(a, "w1", batch)  # A commits, then SIGKILLs itself
        assert proc_a.proc.wait(timeout=30) == -signal.SIGKILL
        async with resources.sessionmaker() as session:
            written = (
                await session.execute(sa.text("SELECT count(*) FROM parcel_history"))
            ).scalar_one()
        assert written == NORMAL + KILLED  # the commit happened ...
        for t in batch:  # ... and no lease was released
            assert await queue.task(t["task_id"]) is not None

        # The worker retries half of the batch on B, with the same leases.
        retried = batch[: KILLED // 2]
        answer = (await _post(b, "w1", retried)).json()
        assert [r["outcome"] for r in answer["results"]] == ["duplicate"] * len(retried)

        # The other half's leases expire; B's reaper requeues them. A worker polling B does
        # whatever it is handed, as a real one would, until none of the batch is queued.
        handed: list[dict[str, Any]] = []
        deadline = time.monotonic() + 90
        while True:
            remaining = [t for t in batch if await queue.task(t["task_id"]) is not None]
            if not remaining:
                break
            assert time.monotonic() < deadline, f"{len(remaining)} tasks still queued"
            got = await _lease(b, "heir", wait=1)
            if got:
                handed += got
                await _post(b, "heir", got)
            else:
                await asyncio.sleep(0.05)

        assert handed == []  # done tasks were dropped at lease time, never redone
        async with resources.sessionmaker() as session:
            rows, tasks = (
                await session.execute(
                    sa.text("SELECT count(*), count(DISTINCT task_id) FROM parcel_history")
                )
            ).one()
        assert (rows, tasks) == (NORMAL + KILLED, NORMAL + KILLED)  # one row per task
        # B committed only its own tasks: the killed batch's retries and redos never count.
        committed = metric_value(
            (await b.get("/metrics")).text,
            "gateway_results_committed_total",
            audience="parcel",
            platform="alpha",
        )
        assert committed == NORMAL
    finally:
        await a.aclose()
        await b.aclose()
