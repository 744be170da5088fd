"""`POST /v1/jobs/batch`: several specs, one outcome each, in process on real backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.core.settings import Settings
from gateway.jobs.models import JobCreated
from gateway.jobs.owner import Owner
from gateway.jobs.spec import JobSpec
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.public import write_tiers
from tests.support.tcp_proxy import redis_proxy

BATCH = "/v1/jobs/batch"
OPEN_TIER = {"rate_per_s": 1000, "burst": 1000, "daily_quota": 0, "max_page_size": 100}


def spec(*ids: str, platform: str = "alpha", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "parcel_refresh",
        "items": [{"platform": platform, "parcel_id": i} for i in ids],
        **extra,
    }


@pytest.fixture
async def h(settings: Settings, tmp_path: Path) -> AsyncIterator[JobsHarness]:
    tiers = write_tiers(tmp_path / "tiers.json", open=OPEN_TIER)
    async with jobs_harness(settings, tiers_file=tiers, job_batch_max=5) as harness:
        yield harness


async def test_each_spec_gets_its_own_outcome(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    body = {
        "jobs": [
            spec("b-1", "b-2", label="first"),
            spec("b-3", platform="zeta"),  # unknown platform
            {"items": [{"platform": "alpha", "parcel_id": "b-4"}]},  # no kind
            spec("b-5"),
            spec(),  # no items
        ]
    }
    response = await h.public.post(BATCH, json=body, headers={"X-API-Key": key})
    assert response.status_code == 200, response.text
    out = response.json()
    assert (out["created"], out["failed"]) == (2, 3)
    assert [r["index"] for r in out["results"]] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in out["results"]] == [201, 422, 422, 201, 422]
    first, unknown, no_kind, second, empty = out["results"]
    assert first["job"]["label"] == "first"
    assert first["job"]["estimate"]["items"] == 2
    assert "problem" not in first or first["problem"] is None
    assert unknown["problem"]["errors"][0]["loc"] == ["body", "jobs", 1, "items", 0, "platform"]
    assert unknown["problem"]["status"] == 422
    assert unknown["problem"]["type"].endswith("/validation-error")
    assert no_kind["problem"]["errors"][0]["loc"] == ["body", "jobs", 2, "kind"]
    assert empty["problem"]["errors"][0]["loc"] == ["body", "jobs", 4, "items"]
    # The created jobs are real, the failed ones left nothing.
    for created in (first, second):
        job = await h.job(key, created["job"]["id"])
        assert job["state"] == "queued"
    assert await h.count("SELECT count(*) FROM jobs") == 2


async def test_a_batch_is_bounded_and_not_empty(h: JobsHarness) -> None:
    key = await h.key(tier="open")
    too_many = {"jobs": [spec(f"m-{i}") for i in range(6)]}
    response = await h.public.post(BATCH, json=too_many, headers={"X-API-Key": key})
    assert response.status_code == 422, response.text
    assert "at most 5" in response.json()["errors"][0]["msg"]
    empty = await h.public.post(BATCH, json={"jobs": []}, headers={"X-API-Key": key})
    assert empty.status_code == 422
    assert await h.count("SELECT count(*) FROM jobs") == 0


async def test_a_refused_spec_carries_its_own_problem(settings: Settings, tmp_path: Path) -> None:
    # Two jobs per hour: the third spec is refused with a 429 of its own, and the
    # batch answer says when to retry.
    tiers = write_tiers(tmp_path / "tiers.json", two={**OPEN_TIER, "jobs_per_hour": 2})
    async with jobs_harness(settings, tiers_file=tiers) as h:
        key = await h.key(tier="two")
        body = {"jobs": [spec("r-1"), spec("r-2"), spec("r-3")]}
        response = await h.public.post(BATCH, json=body, headers={"X-API-Key": key})
        assert response.status_code == 200, response.text
        out = response.json()
        assert [r["status"] for r in out["results"]] == [201, 201, 429]
        assert int(response.headers["Retry-After"]) >= 1


async def test_redis_down_before_any_job_fails_the_whole_batch(
    settings: Settings, tmp_path: Path
) -> None:
    assert settings.redis_url is not None
    proxy, proxied = redis_proxy(settings.redis_url)
    await proxy.start()
    tiers = write_tiers(tmp_path / "tiers.json", open=OPEN_TIER)
    try:
        async with jobs_harness(settings, redis_url=proxied, tiers_file=tiers) as h:
            key = await h.key(tier="open")
            await proxy.cut()
            body = {"jobs": [spec("d-1"), spec("d-2")]}
            response = await h.public.post(BATCH, json=body, headers={"X-API-Key": key})
            await proxy.restore()
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
            assert response.json()["dependency"] == "redis"
            listed = await h.public.get("/v1/jobs", headers={"X-API-Key": key})
            assert listed.json()["items"] == []
    finally:
        await proxy.close()


async def test_redis_down_after_a_job_was_created_is_reported_per_spec(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.redis_url is not None
    proxy, proxied = redis_proxy(settings.redis_url)
    await proxy.start()
    tiers = write_tiers(tmp_path / "tiers.json", open=OPEN_TIER)
    try:
        async with jobs_harness(settings, redis_url=proxied, tiers_file=tiers) as h:
            key = await h.key(tier="open")
            service = h.jobs.service
            submit = service.submit

            async def submit_then_cut(owner: Owner, job: JobSpec) -> JobCreated:
                # Redis goes away right after the first job was created.
                created = await submit(owner, job)
                await proxy.cut()
                return created

            monkeypatch.setattr(service, "submit", submit_then_cut)
            body = {"jobs": [spec("e-1"), spec("e-2"), spec("e-3")]}
            response = await h.public.post(BATCH, json=body, headers={"X-API-Key": key})
            monkeypatch.undo()
            await proxy.restore()
            assert response.status_code == 200, response.text
            out = response.json()
            assert (out["created"], out["failed"]) == (1, 2)
            assert [r["status"] for r in out["results"]] == [201, 503, 503]
            tried, skipped = out["results"][1]["problem"], out["results"][2]["problem"]
            assert tried["dependency"] == skipped["dependency"] == "redis"
            assert skipped["detail"].startswith("Not attempted")
            assert response.headers["Retry-After"]
            job = await h.job(key, out["results"][0]["job"]["id"])
            assert job["state"] == "queued"
    finally:
        await proxy.close()
