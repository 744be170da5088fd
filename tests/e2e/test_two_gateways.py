"""Two real `gateway serve` processes sharing Redis and PostgreSQL: no double leasing
across them, and each expired lease is reclaimed by exactly one of their reapers."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.work.plane import WorkerPlane
from tests.support.gateway_process import GatewayProcess, replica_env, start_gateway
from tests.support.work import make_token, parcel_data

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

TASKS = 200
CRASHED = 30


@pytest.fixture
def gateways(settings: Settings, tmp_path: Path) -> Iterator[list[GatewayProcess]]:
    """Two gateways on the test's database and Redis prefix, with 5 s leases."""
    procs = [start_gateway(tmp_path, replica_env(settings)) for _ in range(2)]
    try:
        for proc in procs:
            proc.wait_ready()
        yield procs
    finally:
        codes = [proc.stop() for proc in procs]  # every one, even when one fails
        assert codes == [0, 0], "\n".join(proc.output() for proc in procs)


def _expirations(metrics: str) -> float:
    found = re.search(
        r'^gateway_lease_expirations_total\{audience="parcel",platform="alpha"\} (\S+)$',
        metrics,
        re.M,
    )
    return float(found.group(1)) if found else 0.0


async def test_two_gateways_share_one_queue(
    gateways: list[GatewayProcess], resources: Resources
) -> None:
    token = await make_token(resources)
    headers = {"X-Worker-Token": token}
    a, b = (
        httpx.AsyncClient(base_url=g.url("parcel", ""), headers=headers, timeout=30)
        for g in gateways
    )
    try:
        tasks = [{"platform": "alpha", "key": f"k{i}"} for i in range(TASKS)]
        enqueued = await a.post("/internal/tasks", json={"tasks": tasks})
        assert enqueued.json()["enqueued"] == TASKS
        assert (await b.post("/internal/tasks", json={"tasks": tasks})).json()[
            "duplicates"
        ] == TASKS

        leases: Counter[str] = Counter()

        async def worker(n: int) -> None:
            lease_on, report_on = (a, b) if n % 2 else (b, a)
            for _ in range(100):
                got = await lease_on.get(
                    "/internal/work",
                    params={"worker_id": f"w{n}", "platforms": "alpha", "limit": 5},
                )
                batch = got.json()["tasks"]
                if not batch:
                    return
                leases.update(t["task_id"] for t in batch)
                results = [
                    {
                        "task_id": t["task_id"],
                        "lease_id": t["lease_id"],
                        "status": "succeeded",
                        "data": parcel_data(t["key"]),
                    }
                    for t in batch
                ]
                posted = await report_on.post(
                    "/internal/results", json={"worker_id": f"w{n}", "results": results}
                )
                assert posted.json()["accepted"] == len(batch), posted.text

        await asyncio.gather(*(worker(n) for n in range(16)))
        assert len(leases) == TASKS
        assert set(leases.values()) == {1}  # no task was ever handed out twice
        async with resources.sessionmaker() as session:
            counts = (
                await session.execute(
                    sa.text("SELECT count(*), count(DISTINCT task_id) FROM parcel_history")
                )
            ).one()
        assert tuple(counts) == (TASKS, TASKS)

        # A worker leases through gateway A and vanishes; both reapers run every 0.1 s.
        crashed = [{"platform": "alpha", "key": f"c{i}"} for i in range(CRASHED)]
        await a.post("/internal/tasks", json={"tasks": crashed})
        taken = (
            await a.get(
                "/internal/work",
                params={"worker_id": "gone", "platforms": "alpha", "limit": CRASHED},
            )
        ).json()["tasks"]
        assert len(taken) == CRASHED
        retaken: list[dict[str, object]] = []
        for _ in range(40):  # bounded: leases expire after 5 s
            got = await b.get(
                "/internal/work",
                params={"worker_id": "heir", "platforms": "alpha", "limit": CRASHED, "wait": 2},
            )
            retaken += got.json()["tasks"]
            if len(retaken) >= CRASHED:
                break
        assert sorted(str(t["task_id"]) for t in retaken) == sorted(t["task_id"] for t in taken)
        assert {t["attempt"] for t in retaken} == {2}  # reclaimed once, not twice
        plane = WorkerPlane(resources, "parcel")
        for t in taken:
            stored = await plane.queue.task(t["task_id"])
            assert stored is not None
            assert [e["message"] for e in stored["errors"]] == ["lease expired"]
        # Each reclaim was counted by exactly one of the two reapers.
        metrics = [(await c.get("/metrics")).text for c in (a, b)]
        assert sum(_expirations(m) for m in metrics) == CRASHED
    finally:
        await a.aclose()
        await b.aclose()
