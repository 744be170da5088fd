from __future__ import annotations

import httpx
import pytest

from gateway.resources import Resources
from tests.support.work import enqueue, lease, make_token, parcel_data, post_results, succeeded

pytestmark = pytest.mark.integration


async def test_round_trip(resources: Resources, parcel_client: httpx.AsyncClient) -> None:
    token = await make_token(resources)
    body = await enqueue(parcel_client, token, [{"platform": "alpha", "key": "p-1"}])
    assert body["enqueued"] == 1
    tasks = await lease(parcel_client, token)
    assert len(tasks) == 1
    r = await post_results(parcel_client, token, [succeeded(tasks[0], parcel_data("p-1"))])
    print(r.json())
    assert r.json()["accepted"] == 1
    r = await post_results(parcel_client, token, [succeeded(tasks[0], parcel_data("p-1"))])
    print(r.json())
    assert r.json()["duplicate"] == 1
    print((await parcel_client.get("/metrics")).text[-3000:])
