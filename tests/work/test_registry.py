"""Worker registry and operator commands: quiet/terminate/run, worker descriptions."""

from __future__ import annotations

import httpx
import pytest

from gateway.core.resources import Resources
from gateway.work.plane import WorkerPlane
from tests.support.work import enqueue, lease, make_token

pytestmark = pytest.mark.integration


async def test_a_quiet_worker_gets_no_work_and_its_heartbeat_says_so(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    registry = WorkerPlane(resources, "parcel").registry
    await enqueue(parcel_client, token, [{"platform": "alpha", "key": f"k{i}"} for i in range(3)])
    await registry.set_command("quiet", ["w1"])
    assert await lease(parcel_client, token, worker_id="w1", wait=0.2) == []
    assert len(await lease(parcel_client, token, worker_id="w2", limit=1)) == 1
    beat = await parcel_client.post(
        "/internal/heartbeat",
        json={"worker_id": "w1", "platforms": ["alpha"], "version": "1.2.3", "stats": {"done": 4}},
        headers={"X-Worker-Token": token},
    )
    assert beat.json()["command"] == "quiet"
    await registry.set_command("terminate", None)
    beat = await parcel_client.post(
        "/internal/heartbeat", json={"worker_id": "w2"}, headers={"X-Worker-Token": token}
    )
    assert beat.json()["command"] == "terminate"
    await registry.set_command("run", None)
    assert len(await lease(parcel_client, token, worker_id="w1", limit=5)) == 2
    workers = {w["worker_id"]: w for w in await registry.workers()}
    assert workers["w1"]["version"] == "1.2.3"
    assert workers["w1"]["platforms"] == ["alpha"]
    assert workers["w1"]["stats"] == {"done": 4}
    assert workers["w1"]["command"] == "run"
