"""Client jobs end to end in one process: submit, scrape, progress, cancel, isolation."""

from __future__ import annotations

import asyncio
import csv
import io
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.core.settings import Settings
from taxlien_worker import Task, TaskContext, Worker, WorkerClient
from tests.support.jobs import JobsHarness, event_validator, jobs_harness
from tests.support.public import metric_value
from tests.support.work import enqueue, lease, parcel_data, post_results, succeeded


@pytest.fixture
async def h(settings: Settings) -> Any:
    async with jobs_harness(settings) as harness:
        yield harness


def parcels(n: int, prefix: str = "p") -> list[str]:
    return [f"{prefix}-{i:04d}" for i in range(n)]


async def test_a_submitted_job_is_queued_with_its_estimate_and_location(h: JobsHarness) -> None:
    key = await h.key()
    response = await h.submit(key, ["a-1", "a-2", "a-2", "a-3"], label="auction thursday")
    assert response.status_code == 201, response.text
    job = response.json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] == "queued"
    assert job["label"] == "auction thursday"
    assert job["estimate"] == {
        "items": 3,
        "duplicate_items": 1,
        "credits": 3,
        "cost_per_item": 1,
    }
    assert job["progress"] == {
        "total": 3,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
        "pending": 3,
    }
    assert (await h.job(key, job["id"]))["state"] == "queued"
    # Each item is a task on the parcel queue, ready for a worker.
    token = await h.worker_token()
    leased = await lease(h.parcel, token, limit=10)
    assert sorted(t["key"] for t in leased) == ["a-1", "a-2", "a-3"]
    assert all(t["payload"]["job_id"] == job["id"] for t in leased)


async def _scrape(task: Task, ctx: TaskContext) -> dict[str, Any]:
    return parcel_data(task.key, owner_name=f"Owner of {task.key}")


async def test_two_hundred_parcels_complete_and_download_as_committed(h: JobsHarness) -> None:
    key = await h.key()
    job = (await h.submit(key, parcels(200))).json()
    # The project's worker client, as a scraper runs it, against the parcel port.
    client = WorkerClient("http://gateway.test", await h.worker_token(), "w-1", http=h.parcel)
    worker = Worker(client, ["alpha"], _scrape, concurrency=20, lease_limit=37, wait_s=1)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        done = await h.wait_state(key, job["id"], "completed")
    finally:
        stop.set()
        await running
    assert worker.stats.outcomes == {"accepted": 200}
    assert done["progress"]["succeeded"] == 200
    assert done["progress"]["pending"] == 0
    assert done["credits"] == {"estimated": 200, "charged": 200, "reserved": 0}
    assert done["finished_at"] is not None

    link = await h.public.post(
        f"/v1/jobs/{job['id']}/download", json={"format": "csv"}, headers={"X-API-Key": key}
    )
    assert link.status_code == 200, link.text
    url = httpx.URL(link.json()["url"])
    body = await h.public.get(url.path)  # no credentials: the link is the credential
    assert body.status_code == 200, body.text
    assert body.headers["content-disposition"] == f'attachment; filename="{job["id"]}.csv"'
    rows = list(csv.DictReader(io.StringIO(body.text)))
    async with h.resources.sessionmaker() as session:
        stored = {
            r.parcel_id: r
            for r in (
                await session.execute(
                    text("SELECT parcel_id, owner_name, tax_amount_due FROM parcels")
                )
            ).all()
        }
    assert [r["parcel_id"] for r in rows] == parcels(200)
    assert all(r["item_state"] == "succeeded" for r in rows)
    for row in rows:
        committed = stored[row["parcel_id"]]
        assert row["owner_name"] == committed.owner_name == f"Owner of {row['parcel_id']}"
        assert Decimal(row["tax_amount_due"]) == committed.tax_amount_due
    metrics = (await h.public.get("/metrics")).text
    assert (
        metric_value(metrics, "gateway_job_downloads_total", format="csv", outcome="completed") == 1
    )


async def test_job_events_tell_the_story_in_order(h: JobsHarness) -> None:
    key = await h.key()
    job = (await h.submit(key, parcels(60))).json()
    token = await h.worker_token()
    while await h.scrape(token, limit=17):
        pass
    await h.wait_state(key, job["id"], "completed")
    events = await h.jobs.publisher.read(job["id"])
    validate = event_validator()
    for event in events:
        validate(event.model_dump(mode="json"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "job.queued"
    assert events[-1].type == "job.completed"
    assert {e.type for e in events[1:-1]} == {"job.progress"}
    succeeded_seen = [e.data["progress"]["succeeded"] for e in events]
    assert succeeded_seen == sorted(succeeded_seen)
    assert succeeded_seen[-1] == 60
    # The outbox holds the same events.
    assert await h.count("SELECT count(*) FROM job_events WHERE job_id = :j", j=job["id"]) == len(
        events
    )


async def test_parcels_shared_by_two_jobs_are_scraped_once(h: JobsHarness) -> None:
    key = await h.key()
    first = (await h.submit(key, parcels(80, "s"))).json()
    second = (await h.submit(key, parcels(50, "s") + parcels(30, "t"))).json()
    token = await h.worker_token()
    leased: list[str] = []
    while batch := await h.scrape(token, limit=25):
        leased += [t["key"] for t in batch]
    assert len(leased) == len(set(leased)) == 110  # 80 + 30 new, the 50 shared once
    a = await h.wait_state(key, first["id"], "completed")
    b = await h.wait_state(key, second["id"], "completed")
    assert a["progress"]["succeeded"] == 80
    assert b["progress"]["succeeded"] == 80
    assert await h.count("SELECT count(*) FROM parcel_history") == 110


async def test_cancelling_one_of_two_sharing_jobs_leaves_the_other_to_complete(
    h: JobsHarness,
) -> None:
    key = await h.key()
    first = (await h.submit(key, parcels(40, "c"))).json()
    second = (await h.submit(key, parcels(40, "c"))).json()
    token = await h.worker_token()
    await h.scrape(token, limit=10)
    cancel = await h.public.post(f"/v1/jobs/{first['id']}/cancel", headers={"X-API-Key": key})
    assert cancel.status_code == 200, cancel.text
    cancelled = cancel.json()
    assert cancelled["state"] == "cancelled"
    assert cancelled["progress"]["succeeded"] == 10
    assert cancelled["progress"]["cancelled"] == 30
    assert cancelled["credits"] == {"estimated": 40, "charged": 10, "reserved": 0}
    # The other job still waits for the 30 tasks: nothing was removed from the queue.
    while await h.scrape(token, limit=10):
        pass
    other = await h.wait_state(key, second["id"], "completed")
    assert other["progress"]["succeeded"] == 40
    final = await h.job(key, first["id"])
    assert final["state"] == "cancelled"
    assert final["progress"]["succeeded"] == 10  # later results moved no cancelled job
    again = await h.public.post(f"/v1/jobs/{first['id']}/cancel", headers={"X-API-Key": key})
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")


async def test_cancel_removes_unleased_tasks_and_tells_leasing_workers(h: JobsHarness) -> None:
    key = await h.key()
    job = (await h.submit(key, parcels(6, "x"))).json()
    token = await h.worker_token()
    held = await lease(h.parcel, token, limit=2)
    cancel = await h.public.post(f"/v1/jobs/{job['id']}/cancel", headers={"X-API-Key": key})
    assert cancel.status_code == 200
    # The four unleased tasks are gone from the queue.
    assert await lease(h.parcel, token, limit=10, worker_id="w2") == []
    beat = await h.parcel.post(
        "/internal/heartbeat",
        json={"worker_id": "w1", "lease_ids": [t["lease_id"] for t in held]},
        headers={"X-Worker-Token": token},
    )
    assert beat.status_code == 200, beat.text
    answer = beat.json()
    assert sorted(answer["lost"]) == sorted(t["lease_id"] for t in held)
    assert sorted(answer["cancelled"]) == sorted(t["lease_id"] for t in held)
    # A result that still arrives is stored (data is data) but the job does not move.
    late = await post_results(h.parcel, token, [succeeded(held[0], parcel_data(held[0]["key"]))])
    assert late.json()["accepted"] == 1
    assert await h.count("SELECT count(*) FROM parcels WHERE parcel_id = :p", p=held[0]["key"]) == 1
    after = await h.job(key, job["id"])
    assert after["progress"]["succeeded"] == 0
    assert after["progress"]["cancelled"] == 6


async def test_a_job_attached_to_a_producers_task_does_not_remove_it_on_cancel(
    h: JobsHarness,
) -> None:
    producer = await h.producer_token()
    await enqueue(h.parcel, producer, [{"platform": "alpha", "key": "shared-1"}])
    key = await h.key()
    job = (await h.submit(key, ["shared-1"])).json()
    assert (
        await h.public.post(f"/v1/jobs/{job['id']}/cancel", headers={"X-API-Key": key})
    ).status_code == 200
    token = await h.worker_token()
    leased = await lease(h.parcel, token, limit=5)
    assert [t["key"] for t in leased] == ["shared-1"]  # the producer still wants it


async def test_a_job_attached_to_a_producers_task_completes_with_it(h: JobsHarness) -> None:
    producer = await h.producer_token()
    queued = await enqueue(h.parcel, producer, [{"platform": "alpha", "key": "prod-1"}])
    key = await h.key()
    job = (await h.submit(key, ["prod-1", "prod-2"])).json()
    token = await h.worker_token()
    leased = []
    while batch := await h.scrape(token):
        leased += batch
    assert sorted(t["key"] for t in leased) == ["prod-1", "prod-2"]
    assert queued["task_ids"][0] in {t["task_id"] for t in leased}
    await h.wait_state(key, job["id"], "completed")


async def test_dead_letters_fail_their_items_with_the_last_error(h: JobsHarness) -> None:
    key = await h.key()
    job = (await h.submit(key, parcels(4, "d"))).json()
    token = await h.worker_token()
    while await h.scrape(token, fail=lambda task: task["key"] in ("d-0001", "d-0003")):
        pass
    done = await h.wait_state(key, job["id"], "partially_failed")
    assert done["progress"]["succeeded"] == 2
    assert done["progress"]["failed"] == 2
    assert done["credits"]["charged"] == 2
    items = await h.public.get(
        f"/v1/jobs/{job['id']}/items", params={"status": "failed"}, headers={"X-API-Key": key}
    )
    assert items.status_code == 200
    failed = items.json()["items"]
    assert [i["id"] for i in failed] == ["d-0001", "d-0003"]
    assert all(i["last_error"] == "county site says no" for i in failed)
    assert all(i["attempts"] == 1 for i in failed)


async def test_a_job_whose_items_all_fail_is_failed(h: JobsHarness) -> None:
    key = await h.key()
    job = (await h.submit(key, parcels(3, "f"))).json()
    token = await h.worker_token()
    while await h.scrape(token, fail=lambda task: True):
        pass
    done = await h.wait_state(key, job["id"], "failed")
    assert done["progress"]["failed"] == 3
    assert done["credits"] == {"estimated": 3, "charged": 0, "reserved": 0}


async def test_a_result_posted_twice_moves_its_item_once(h: JobsHarness) -> None:
    key = await h.key()
    job = (await h.submit(key, ["twice-1", "twice-2"])).json()
    token = await h.worker_token()
    tasks = await lease(h.parcel, token, limit=1)
    item = succeeded(tasks[0], parcel_data(tasks[0]["key"]))
    first = await post_results(h.parcel, token, [item])
    second = await post_results(h.parcel, token, [item])
    assert first.json()["accepted"] == 1
    assert second.json()["duplicate"] == 1
    state = await h.job(key, job["id"])
    assert state["state"] == "running"
    assert state["progress"]["succeeded"] == 1
    assert state["progress"]["pending"] == 1


async def test_another_principals_job_is_a_404_everywhere(h: JobsHarness) -> None:
    alice = await h.key(user="alice")
    bob = await h.key(user="bob")
    job = (await h.submit(alice, ["mine-1"])).json()
    headers = {"X-API-Key": bob}
    for method, path in (
        ("GET", f"/v1/jobs/{job['id']}"),
        ("GET", f"/v1/jobs/{job['id']}/items"),
        ("POST", f"/v1/jobs/{job['id']}/cancel"),
    ):
        response = await h.public.request(method, path, headers=headers)
        assert response.status_code == 404, (method, path, response.text)
        assert job["id"] in response.json()["detail"]
    listed = await h.public.get("/v1/jobs", headers=headers)
    assert listed.json()["items"] == []
    # Two keys of one user own their jobs separately, like their rate limits.
    alices_other = await h.key(user="alice")
    other = await h.public.get(f"/v1/jobs/{job['id']}", headers={"X-API-Key": alices_other})
    assert other.status_code == 404


async def test_anonymous_callers_own_no_jobs(h: JobsHarness, settings: Settings) -> None:
    async with jobs_harness(settings, anonymous_tier="free") as anon:
        response = await anon.public.post(
            "/v1/jobs",
            json={"kind": "parcel_refresh", "items": [{"platform": "alpha", "parcel_id": "a"}]},
        )
    assert response.status_code == 403
    assert "account" in response.json()["detail"]


async def test_bad_items_are_422_with_their_index_and_nothing_is_created(h: JobsHarness) -> None:
    key = await h.key()
    body = {
        "kind": "parcel_refresh",
        "items": [
            {"platform": "alpha", "parcel_id": "ok-1"},
            {"platform": "nowhere", "parcel_id": "ok-2"},
            {"platform": "alpha", "parcel_id": ""},
            {"platform": "alpha"},
            "not an object",
        ],
    }
    response = await h.public.post("/v1/jobs", json=body, headers={"X-API-Key": key})
    assert response.status_code == 422
    locs = [tuple(e["loc"][:3]) for e in response.json()["errors"]]
    assert locs == [
        ("body", "items", 1),
        ("body", "items", 2),
        ("body", "items", 3),
        ("body", "items", 4),
    ]
    assert "nowhere" not in response.text  # the submitted value is not echoed
    assert await h.count("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"kind": "parcel_refresh", "items": []}, "at least one item"),
        ({"kind": "parcel_refresh"}, "Field required"),
        ({"kind": "teleport", "items": [{"platform": "alpha", "parcel_id": "a"}]}, "kind"),
        (
            {
                "kind": "parcel_refresh",
                "items": [{"platform": "alpha", "parcel_id": "a"}],
                "deadline": "2001-01-01T00:00:00Z",
            },
            "future",
        ),
    ],
)
async def test_malformed_submissions_are_422(
    h: JobsHarness, body: dict[str, Any], needle: str
) -> None:
    key = await h.key()
    response = await h.public.post("/v1/jobs", json=body, headers={"X-API-Key": key})
    assert response.status_code == 422, response.text
    assert needle in response.text


async def test_too_many_items_for_the_tier_names_the_cap(h: JobsHarness) -> None:
    key = await h.key(tier="free")  # max_job_items 1000
    response = await h.submit(key, parcels(1001, "cap"))
    assert response.status_code == 422
    assert "at most 1000" in response.text


async def test_jobs_list_newest_first_with_filters_and_cursor(h: JobsHarness) -> None:
    key = await h.key()
    ids = [(await h.submit(key, [f"l-{i}"])).json()["id"] for i in range(5)]
    await h.public.post(f"/v1/jobs/{ids[1]}/cancel", headers={"X-API-Key": key})
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await h.public.get("/v1/jobs", params=params, headers={"X-API-Key": key})).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    cancelled = await h.public.get(
        "/v1/jobs", params={"status": "cancelled"}, headers={"X-API-Key": key}
    )
    assert [j["id"] for j in cancelled.json()["items"]] == [ids[1]]
    bad = await h.public.get("/v1/jobs", params={"status": "nope"}, headers={"X-API-Key": key})
    assert bad.status_code == 422
    tampered = await h.public.get("/v1/jobs", params={"cursor": "%%%"}, headers={"X-API-Key": key})
    assert tampered.status_code == 422


async def test_items_page_by_index_with_live_attempts(h: JobsHarness) -> None:
    key = await h.key()
    job = (await h.submit(key, parcels(5, "i"))).json()
    token = await h.worker_token()
    tasks = await lease(h.parcel, token, limit=1)
    retry = await post_results(
        h.parcel,
        token,
        [
            {
                "task_id": tasks[0]["task_id"],
                "lease_id": tasks[0]["lease_id"],
                "status": "failed",
                "error": {"message": "timeout", "retryable": True},
            }
        ],
    )
    assert retry.status_code == 200
    first = (
        await h.public.get(
            f"/v1/jobs/{job['id']}/items", params={"limit": 3}, headers={"X-API-Key": key}
        )
    ).json()
    assert [i["index"] for i in first["items"]] == [0, 1, 2]
    retried = next(i for i in first["items"] if i["id"] == tasks[0]["key"])
    assert retried["state"] == "pending"
    assert retried["attempts"] == 2
    assert retried["last_error"] == "timeout"
    assert first["items"][0]["property_url"] == "/v1/properties/i-0000"
    rest = (
        await h.public.get(
            f"/v1/jobs/{job['id']}/items",
            params={"limit": 3, "cursor": first["next_cursor"]},
            headers={"X-API-Key": key},
        )
    ).json()
    assert [i["index"] for i in rest["items"]] == [3, 4]
    assert rest["next_cursor"] is None


async def test_admins_see_every_job_and_force_a_state_with_a_reason(h: JobsHarness) -> None:
    alice = await h.key(user="alice")
    admin = await h.admin_key()
    job = (await h.submit(alice, ["adm-1", "adm-2"])).json()
    refused = await h.public.get("/v1/admin/jobs", headers={"X-API-Key": alice})
    assert refused.status_code == 403
    listed = await h.public.get("/v1/admin/jobs", headers={"X-API-Key": admin})
    assert [(j["id"], j["owner"] is not None) for j in listed.json()["items"]] == [
        (job["id"], True)
    ]
    forced = await h.public.patch(
        f"/v1/admin/jobs/{job['id']}",
        json={"state": "failed", "reason": "county portal retired"},
        headers={"X-API-Key": admin},
    )
    assert forced.status_code == 200, forced.text
    assert forced.json()["state"] == "failed"
    seen = await h.job(alice, job["id"])
    assert seen["state"] == "failed"
    assert seen["state_reason"].startswith("county portal retired (by api_key:")
    assert seen["state_reason"].endswith(" of user root)")
    assert seen["progress"]["failed"] == 2
    events = await h.jobs.publisher.read(job["id"])
    assert events[-1].type == "job.failed"
    assert events[-1].data["reason"] == seen["state_reason"]
    other = (await h.submit(alice, ["adm-3"])).json()
    cancel = await h.public.post(
        f"/v1/admin/jobs/{other['id']}/cancel", json={}, headers={"X-API-Key": admin}
    )
    assert cancel.status_code == 200
    assert cancel.json()["state"] == "cancelled"
