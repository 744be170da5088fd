"""The jobs upkeep loop: stuck submissions, lost publishes, missed completions, deadlines,
and a gateway killed in the middle of a submission."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.jobs.models import Item, JobKind
from gateway.jobs.owner import Owner
from gateway.jobs.repository import jobs as repo
from gateway.jobs.spec import JobSpec
from tests.support.audit import TEST_ACTOR
from tests.support.gateway_process import backend_env, start_gateway
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.wait import wait_until
from tests.support.work import enqueue, lease, make_token


@pytest.fixture
async def h(settings: Settings) -> Any:
    async with jobs_harness(settings, job_upkeep_interval_s=3600) as harness:
        yield harness


def _text(value: Any) -> str:
    assert value is not None
    return value.decode() if isinstance(value, bytes) else str(value)


async def _exec(h: JobsHarness, sql: str, **params: Any) -> None:
    async with h.resources.sessionmaker() as session, session.begin():
        await session.execute(text(sql), params)


async def _queued_keys(h: JobsHarness) -> set[str]:
    redis = h.resources.redis
    base = h.jobs.service.queues["parcel"].key("dedupe")
    return {_text(k).split(":", 1)[1] for k in await redis.hkeys(base)}


async def test_a_stuck_submission_is_rolled_back_with_only_its_own_tasks(h: JobsHarness) -> None:
    producer = await h.producer_token()
    await enqueue(h.parcel, producer, [{"platform": "alpha", "key": "keep-1"}])
    owner = Owner(id="user:alice", tier=h.public_plane.tiers.get("pro"))
    service = h.jobs.service
    spec = JobSpec(
        kind=JobKind.PARCEL_REFRESH,
        items=[Item(platform="alpha", key=k) for k in ("keep-1", "gone-1", "gone-2")],
    )
    # What a gateway killed after attaching leaves behind: the job row and its items, and
    # waiters on the queue, but no link and no `queued` state.
    expected, fresh = await service._expected_tasks(spec)
    async with h.resources.sessionmaker() as session, session.begin():
        await h.jobs.budget.admit(session, owner, spec.kind, 3)
        await repo.insert_job(session, service._job_values("job_" + "a" * 24, owner, spec, 1))
        await repo.insert_items(session, "job_" + "a" * 24, spec.items, expected)
    await service._attach("job_" + "a" * 24, spec, fresh)
    assert await _queued_keys(h) == {"keep-1", "gone-1", "gone-2"}
    assert (
        await h.public.get(f"/v1/jobs/job_{'a' * 24}", headers={"X-API-Key": await h.key()})
    ).status_code == 404

    h.jobs.upkeep.settings = h.jobs.service.settings.model_copy(
        update={"job_submit_timeout_s": 0.001}
    )
    assert await h.jobs.upkeep.roll_back_stuck() == 1
    assert await h.count("SELECT count(*) FROM jobs") == 0
    assert await h.count("SELECT count(*) FROM job_items") == 0
    assert await _queued_keys(h) == {"keep-1"}  # the producer's task stays


async def test_a_lost_publish_is_relayed_from_the_outbox(h: JobsHarness) -> None:
    key = await h.key()
    job = (await h.submit(key, ["relay-1", "relay-2"])).json()
    token = await h.worker_token()
    while await h.scrape(token, limit=1):
        pass
    stream = h.jobs.publisher.keys.stream(job["id"])
    before = await h.jobs.publisher.read(job["id"])
    assert [e.type for e in before][-1] == "job.completed"
    await h.resources.redis.delete(stream)  # as if every publish after commit was lost
    await _exec(
        h, "UPDATE jobs SET publish_check_at = now() - interval '1 s' WHERE id = :j", j=job["id"]
    )
    assert await h.jobs.upkeep.relay() == len(before)
    after = await h.jobs.publisher.read(job["id"])
    assert [e.model_dump() for e in after] == [e.model_dump() for e in before]
    # Publishing again is idempotent: nothing is appended twice.
    assert await h.jobs.publisher.publish(before) == 0


async def test_an_item_attached_while_its_task_committed_is_reconciled(h: JobsHarness) -> None:
    key = await h.key()
    job = (await h.submit(key, ["race-1", "race-2"])).json()
    # The task of race-1 is done in PostgreSQL but its item missed the inline move (its
    # commit's hook ran before the item was linked): the first reconcile finds it.
    task_id = _text(
        await h.resources.redis.hget(h.jobs.service.queues["parcel"].key("dedupe"), "alpha:race-1")
    )
    await _exec(h, "INSERT INTO parcel_tasks_done (task_id, lease_id) VALUES (:t, 'x')", t=task_id)
    await _exec(h, "UPDATE jobs SET check_at = now() - interval '1 s' WHERE id = :j", j=job["id"])
    assert await h.jobs.upkeep.reconcile_due() == 1
    state = await h.job(key, job["id"])
    assert state["progress"]["succeeded"] == 1
    assert state["state"] == "running"
    # Reconciling again moves nothing twice.
    await _exec(h, "UPDATE jobs SET check_at = now() - interval '1 s' WHERE id = :j", j=job["id"])
    await h.jobs.upkeep.reconcile_due()
    assert (await h.job(key, job["id"]))["progress"]["succeeded"] == 1


async def test_a_task_redis_lost_is_attached_again(h: JobsHarness) -> None:
    key = await h.key()
    job = (await h.submit(key, ["lost-1"])).json()
    queue = h.jobs.service.queues["parcel"]
    old = _text(await h.resources.redis.hget(queue.key("dedupe"), "alpha:lost-1"))
    await h.resources.redis.delete(
        queue.key("t", old), queue.key("dedupe"), queue.key("ready", "alpha")
    )
    await _exec(h, "UPDATE jobs SET check_at = now() - interval '1 s' WHERE id = :j", j=job["id"])
    await h.jobs.upkeep.reconcile_due()
    token = await h.worker_token()
    assert [t["key"] for t in await h.scrape(token)] == ["lost-1"]
    await h.wait_state(key, job["id"], "completed")


async def test_a_job_past_its_deadline_expires_and_releases_its_tasks(h: JobsHarness) -> None:
    key = await h.key()
    deadline = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    job = (await h.submit(key, ["late-1", "late-2", "late-3"], deadline=deadline)).json()
    token = await h.worker_token()
    await h.scrape(token, limit=1)
    await _exec(
        h,
        "UPDATE jobs SET deadline = now() - interval '1 s', check_at = now() - interval '1 s'"
        " WHERE id = :j",
        j=job["id"],
    )
    assert await h.jobs.upkeep.reconcile_due() == 1
    expired = await h.job(key, job["id"])
    assert expired["state"] == "expired"
    assert expired["progress"] == {
        "total": 3,
        "succeeded": 1,
        "failed": 0,
        "cancelled": 0,
        "expired": 2,
        "pending": 0,
    }
    assert expired["credits"] == {"estimated": 3, "charged": 1, "reserved": 0}
    assert await lease(h.parcel, token, limit=5) == []
    events = await h.jobs.publisher.read(job["id"])
    assert events[-1].type == "job.expired"
    assert events[-1].data["reason"] == "deadline passed"


async def test_redis_down_during_submission_is_a_503_and_leaves_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    from tests.support.public import write_tiers
    from tests.support.tcp_proxy import redis_proxy

    assert settings.redis_url is not None
    proxy, proxied = redis_proxy(settings.redis_url)
    await proxy.start()
    # No jobs-per-hour window: nothing touches Redis before the job is recorded, so the
    # outage hits the attach step, after the first transaction committed.
    tiers = write_tiers(
        tmp_path / "t.json",
        open={"rate_per_s": 100, "burst": 100, "daily_quota": 0, "max_page_size": 10},
    )
    try:
        async with jobs_harness(
            settings, redis_url=proxied, tiers_file=tiers, job_upkeep_interval_s=3600
        ) as h:
            key = await h.key(tier="open")
            await proxy.cut()
            response = await h.submit(key, ["down-1", "down-2"])
            listed = await h.public.get("/v1/jobs", headers={"X-API-Key": key})
            await proxy.restore()
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
            assert response.json()["dependency"] == "redis"
            assert listed.json()["items"] == []  # never visible to its owner
            # Whatever the outage kept from being undone at once, the upkeep loop undoes.
            h.jobs.upkeep.settings = h.jobs.service.settings.model_copy(
                update={"job_submit_timeout_s": 0.001}
            )
            await h.jobs.upkeep.roll_back_stuck()
            assert await h.count("SELECT count(*) FROM jobs") == 0
            assert await _queued_keys(h) == set()
    finally:
        await proxy.close()


@pytest.mark.e2e
async def test_a_gateway_killed_mid_submission_leaves_no_job_and_no_orphan_tasks(
    settings: Settings, resources: Resources, tmp_path: Path
) -> None:
    env = {
        **backend_env(settings),
        "RUN_MIGRATIONS": "false",
        "JOB_PLATFORMS": '{"parcel": ["alpha"]}',
        "JOB_ATTACH_CHUNK": "10",
        "LOG_LEVEL": "warning",
    }
    producer = await make_token(resources, "parcel", "producer")
    plane_key = await _api_key(resources)
    dying = start_gateway(tmp_path, {**env, "FAULT_INJECT": "exit_mid_submit"})
    try:
        dying.wait_ready()
        async with httpx.AsyncClient(timeout=30) as client:
            # One item of the first chunk is also wanted by a producer: it must survive.
            queued = await client.post(
                dying.url("parcel", "/internal/tasks"),
                json={"tasks": [{"platform": "alpha", "key": "k-03"}]},
                headers={"X-Worker-Token": producer},
            )
            assert queued.status_code == 200
            body = {
                "kind": "parcel_refresh",
                "items": [{"platform": "alpha", "parcel_id": f"k-{i:02d}"} for i in range(30)],
            }
            with pytest.raises(httpx.HTTPError):
                await client.post(
                    dying.url("public", "/v1/jobs"), json=body, headers={"X-API-Key": plane_key}
                )
        assert dying.proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        dying.stop(signal.SIGKILL)
    assert len(await _dedupe(resources)) == 10  # the first chunk was attached

    survivor = start_gateway(
        tmp_path, {**env, "JOB_SUBMIT_TIMEOUT_S": "0.5", "JOB_UPKEEP_INTERVAL_S": "0.1"}
    )
    try:
        survivor.wait_ready()

        async def rolled_back() -> bool:
            async with resources.sessionmaker() as session:
                jobs = (await session.execute(text("SELECT count(*) FROM jobs"))).scalar_one()
            return bool(jobs == 0)

        await wait_until(rolled_back, what="the stuck submission rolled back")
        assert set(await _dedupe(resources)) == {"alpha:k-03"}
        async with resources.sessionmaker() as session:
            items = (await session.execute(text("SELECT count(*) FROM job_items"))).scalar_one()
        assert items == 0
    finally:
        assert survivor.stop() == 0, survivor.output()


async def _dedupe(resources: Resources) -> list[str]:
    raw = await resources.redis.hkeys(resources.key("wq", "parcel", "dedupe"))
    return sorted(_text(k) for k in raw)


async def _api_key(resources: Resources) -> str:
    from gateway.core.settings.tiers import load_tiers
    from gateway.public.api_keys import ApiKeyService

    service = ApiKeyService(resources.sessionmaker, load_tiers(None, "free"), 0)
    issued = await service.create(name="crash", tier="pro", user_uid="alice", actor=TEST_ACTOR)
    return issued.secret
