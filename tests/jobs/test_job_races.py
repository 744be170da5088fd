"""Submissions under concurrency and outages, over HTTP: one Idempotency-Key, fifty
identical POSTs; PostgreSQL down."""

from __future__ import annotations

import asyncio

from gateway.core.settings import Settings
from tests.support.jobs import jobs_harness
from tests.support.tcp_proxy import started_database_proxy


async def test_fifty_concurrent_identical_posts_with_one_key_create_one_job(
    settings: Settings,
) -> None:
    async with jobs_harness(settings, job_upkeep_interval_s=3600) as h:
        key = await h.key()
        body = {
            "kind": "parcel_refresh",
            "items": [{"platform": "alpha", "parcel_id": f"race-{i}"} for i in range(20)],
        }
        headers = {"X-API-Key": key, "Idempotency-Key": '"refresh-once"'}
        answers = await asyncio.gather(
            *(h.public.post("/v1/jobs", json=body, headers=headers) for _ in range(50))
        )
        jobs = await h.count("SELECT count(*) FROM jobs")
        tasks = await h.resources.redis.hlen(h.jobs.service.queues["parcel"].key("dedupe"))
    statuses = sorted({a.status_code for a in answers})
    assert jobs == 1
    assert tasks == 20
    assert set(statuses) <= {201, 409}  # created (first or replayed) or still in flight
    created = [a for a in answers if a.status_code == 201]
    assert len({a.json()["id"] for a in created}) == 1
    assert sum(1 for a in created if "idempotent-replayed" not in a.headers) == 1


async def test_postgresql_down_is_a_503_and_creates_nothing(settings: Settings) -> None:
    assert settings.database_url is not None
    async with (
        started_database_proxy(settings.database_url) as (proxy, proxied),
        jobs_harness(settings, database_url=proxied, job_upkeep_interval_s=3600) as h,
    ):
        key = await h.key()
        assert (await h.public.get("/v1/me", headers={"X-API-Key": key})).status_code == 200
        await proxy.cut()
        response = await h.submit(key, ["pg-1", "pg-2"])
        await proxy.restore()
        jobs = await h.count("SELECT count(*) FROM jobs")
        queued = await h.resources.redis.hlen(h.jobs.service.queues["parcel"].key("dedupe"))
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert jobs == 0
    assert queued == 0
