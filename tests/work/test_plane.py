"""The reaper pass: worker expiry and the queue gauges it exports."""

from __future__ import annotations

import pytest

from gateway.core.settings import Settings
from gateway.work.plane import WorkerPlane
from tests.support.wait import wait_until
from tests.support.work import enqueue, failed, lease, make_token, post_results, work_app

pytestmark = pytest.mark.integration


async def test_reaper_pass_exports_queue_gauges_and_expires_workers(settings: Settings) -> None:
    # A long reaper interval: this test drives the passes itself. The worker must still
    # count as active at the first pass however slow the machine: a 3 s expiry, then a
    # wait for it to lapse.
    async with work_app(settings, reaper_interval_s=3600, worker_expiry_s=3.0) as (
        resources,
        client,
    ):
        token = await make_token(resources)
        await enqueue(client, token, [{"platform": "alpha", "key": f"k{i}"} for i in range(5)])
        await enqueue(
            client,
            token,
            [{"platform": "alpha", "key": "later", "not_before": "2999-01-01T00:00:00Z"}],
        )
        leased = await lease(client, token, limit=2)
        await post_results(client, token, [failed(leased[0], "gone", retryable=False)])
        await client.post(
            "/internal/heartbeat", json={"worker_id": "w1"}, headers={"X-Worker-Token": token}
        )
        plane: WorkerPlane = client._transport.app.state.planes["work"]  # type: ignore[attr-defined]
        await plane.reap_once()
        text = (await client.get("/metrics")).text
        a = 'audience="parcel",platform="alpha"'
        assert f'gateway_queue_depth{{{a},state="ready"}} 3.0' in text
        assert f'gateway_queue_depth{{{a},state="delayed"}} 1.0' in text
        assert f'gateway_queue_depth{{{a},state="leased"}} 1.0' in text
        assert f'gateway_queue_depth{{{a},state="dead"}} 1.0' in text
        assert f"gateway_queue_oldest_ready_age_seconds{{{a}}}" in text
        assert 'gateway_workers_active{audience="parcel"} 1.0' in text
        assert 'gateway_worker_heartbeat_age_max_seconds{audience="parcel"}' in text
        assert f"gateway_tasks_enqueued_total{{{a}}} 6.0" in text
        assert f"gateway_tasks_leased_total{{{a}}} 2.0" in text

        async def expired() -> bool:  # past WORKER_EXPIRY_S without a heartbeat
            await plane.reap_once()
            return await plane.registry.workers() == []

        await wait_until(expired, what="the silent worker expiring")
        text = (await client.get("/metrics")).text
        assert 'gateway_workers_active{audience="parcel"} 0.0' in text


async def test_party_port_has_its_own_queue(settings: Settings) -> None:
    from gateway.core.audience import Audience

    async with work_app(settings, audience=Audience.PARTY) as (resources, party):
        party_token = await make_token(resources, "party")
        parcel_token = await make_token(resources, "parcel")
        await enqueue(party, party_token, [{"platform": "alpha", "key": "k"}])
        async with work_app(settings) as (_, parcel):
            assert await lease(parcel, parcel_token) == []
        assert len(await lease(party, party_token)) == 1
