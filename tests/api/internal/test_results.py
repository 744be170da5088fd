"""`POST /internal/results`: commit before release, duplicates, stale leases, validation,
PostgreSQL outages, retries and dead letters."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.work.plane import WorkerPlane
from tests.conftest import ClientFactory
from tests.support.audit import TEST_ACTOR
from tests.support.tcp_proxy import database_proxy
from tests.support.wait import wait_until
from tests.support.work import (
    enqueue,
    failed,
    lease,
    make_token,
    parcel_data,
    party_data,
    post_results,
    succeeded,
    work_app,
)

pytestmark = pytest.mark.integration


async def _scalar(resources: Resources, sql: str, **params: Any) -> Any:
    async with resources.sessionmaker() as session:
        return (await session.execute(sa.text(sql), params)).scalar_one()


async def _one_task(client: httpx.AsyncClient, token: str, key: str = "p-1") -> dict[str, Any]:
    await enqueue(client, token, [{"platform": "alpha", "key": key}])
    tasks = await lease(client, token, limit=1)
    assert len(tasks) == 1
    return tasks[0]


async def test_succeeded_result_is_committed_and_the_task_is_done(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    task = await _one_task(parcel_client, token)
    response = await post_results(
        parcel_client, token, [succeeded(task, parcel_data("p-1", owner_name="Ann"))]
    )
    assert response.status_code == 200
    assert response.json() == {
        "accepted": 1,
        "duplicate": 0,
        "rejected": 0,
        "results": [
            {"task_id": task["task_id"], "lease_id": task["lease_id"], "outcome": "accepted"}
        ],
    }
    assert (
        await _scalar(resources, "SELECT owner_name FROM parcels WHERE parcel_id = 'p-1'") == "Ann"
    )
    assert await _scalar(resources, "SELECT lease_id FROM parcel_history") == task["lease_id"]
    assert await WorkerPlane(resources, "parcel").queue.task(task["task_id"]) is None
    # The key is free again: the same parcel can be scheduled anew.
    assert (await enqueue(parcel_client, token, [{"platform": "alpha", "key": "p-1"}]))[
        "enqueued"
    ] == 1


async def test_duplicate_result_writes_nothing_twice(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    task = await _one_task(parcel_client, token)
    item = succeeded(task, parcel_data("p-1"))
    assert (await post_results(parcel_client, token, [item])).json()["accepted"] == 1
    again = (await post_results(parcel_client, token, [item, item])).json()
    assert [r["outcome"] for r in again["results"]] == ["duplicate", "duplicate"]
    assert await _scalar(resources, "SELECT count(*) FROM parcel_history") == 1
    metrics = (await parcel_client.get("/metrics")).text
    assert (
        'gateway_tasks_completed_total{audience="parcel",outcome="succeeded",platform="alpha"} 1.0'
        in metrics
    )
    assert 'gateway_results_committed_total{audience="parcel",platform="alpha"} 1.0' in metrics


async def test_a_crashed_workers_task_is_reclaimed_and_its_late_result_is_a_duplicate(
    settings: Settings,
) -> None:
    async with work_app(
        settings,
        lease_timeout_s=0.5,
        reaper_interval_s=0.1,
        retry_backoff_base_s=0,
        retry_backoff_cap_s=0,
    ) as (resources, client):
        token = await make_token(resources)
        lost = await _one_task(client, token)  # worker A leases, then "crashes"
        # Worker B long-polls; the reaper reclaims A's lease and wakes it.
        retaken = await lease(client, token, worker_id="b", wait=10)
        assert [t["task_id"] for t in retaken] == [lost["task_id"]]
        assert retaken[0]["attempt"] == 2
        assert retaken[0]["lease_id"] != lost["lease_id"]
        ok = await post_results(
            client, token, [succeeded(retaken[0], parcel_data("p-1", owner_name="B"))], "b"
        )
        assert ok.json()["accepted"] == 1
        late = await post_results(
            client, token, [succeeded(lost, parcel_data("p-1", owner_name="A"))], "a"
        )
        # Completion is per task: the task is done (by B's lease), so A's late result for
        # it is a duplicate, and writes nothing.
        assert late.json()["results"][0] == {
            "task_id": lost["task_id"],
            "lease_id": lost["lease_id"],
            "outcome": "duplicate",
        }
        assert await _scalar(resources, "SELECT owner_name FROM parcels") == "B"
        assert await _scalar(resources, "SELECT count(*) FROM parcel_history") == 1
        metrics = (await client.get("/metrics")).text
        assert 'gateway_lease_expirations_total{audience="parcel",platform="alpha"} 1.0' in metrics


async def test_heartbeats_keep_a_lease_and_report_lost_ones(settings: Settings) -> None:
    # The lease must outlast the longest pause between two heartbeats on a busy machine,
    # so it is 30 times the heartbeat step; the test waits for `dropped` to be reclaimed.
    async with work_app(settings, lease_timeout_s=3.0, reaper_interval_s=0.1) as (
        resources,
        client,
    ):
        token = await make_token(resources)
        await enqueue(
            client,
            token,
            [{"platform": "alpha", "key": "kept"}, {"platform": "alpha", "key": "dropped"}],
        )
        kept, dropped = await lease(client, token, limit=2)
        headers = {"X-Worker-Token": token}
        queue = WorkerPlane(resources, "parcel").queue

        async def keep_until_dropped_is_reclaimed() -> bool:
            beat = await client.post(
                "/internal/heartbeat",
                json={"worker_id": "w1", "platforms": ["alpha"], "lease_ids": [kept["lease_id"]]},
                headers=headers,
            )
            assert beat.json()["extended"] == [kept["lease_id"]]
            stored = await queue.task(dropped["task_id"])
            return stored is not None and stored["state"] != "leased"

        await wait_until(keep_until_dropped_is_reclaimed, what="the unextended lease expiring")
        beat = await client.post(
            "/internal/heartbeat",
            json={
                "worker_id": "w1",
                "platforms": ["alpha"],
                "lease_ids": [kept["lease_id"], dropped["lease_id"], "unknown"],
            },
            headers=headers,
        )
        body = beat.json()
        assert body["extended"] == [kept["lease_id"]]
        assert body["lost"] == [dropped["lease_id"], "unknown"]
        assert body["command"] == "run"
        assert 0 < body["heartbeat_interval_s"] <= 1.0  # a third of the lease
        # Another worker cannot extend (or steal) w1's lease.
        other = await client.post(
            "/internal/heartbeat",
            json={"worker_id": "w2", "lease_ids": [kept["lease_id"]]},
            headers=headers,
        )
        assert other.json()["lost"] == [kept["lease_id"]]
        result = await post_results(client, token, [succeeded(kept, parcel_data("kept"))])
        assert result.json()["accepted"] == 1


async def test_postgres_down_is_503_keeps_the_lease_and_loses_nothing(settings: Settings) -> None:
    proxy, proxied = database_proxy(settings.database_url or "")
    await proxy.start()
    try:
        async with work_app(settings, database_url=proxied) as (resources, client):
            token = await make_token(resources)
            task = await _one_task(client, token)
            item = succeeded(task, parcel_data("p-1"))
            await proxy.cut()
            down = await post_results(client, token, [item])
            assert down.status_code == 503
            assert down.json()["dependency"] == "database"
            assert down.headers["retry-after"]
            # The lease is still held: the worker can keep it alive while it waits.
            beat = await client.post(
                "/internal/heartbeat",
                json={"worker_id": "w1", "lease_ids": [task["lease_id"]]},
                headers={"X-Worker-Token": token},
            )
            assert beat.status_code == 200
            assert beat.json()["extended"] == [task["lease_id"]]
            await proxy.restore()
            answers: list[httpx.Response] = []

            async def posted() -> bool:
                answers.append(await post_results(client, token, [item]))
                return answers[-1].status_code == 200

            await wait_until(posted, what="the result posting once PostgreSQL is back")
            assert answers[-1].json()["results"][0]["outcome"] == "accepted"
            assert await _scalar(resources, "SELECT count(*) FROM parcel_history") == 1
    finally:
        await proxy.close()


async def test_retryable_failures_back_off_then_dead_letter(settings: Settings) -> None:
    async with work_app(
        settings,
        max_attempts=3,
        retry_backoff_base_s=0.05,
        retry_backoff_cap_s=0.2,
        reaper_interval_s=0.05,
    ) as (resources, client):
        token = await make_token(resources)
        task = await _one_task(client, token)
        plane = WorkerPlane(resources, "parcel")
        for attempt in (1, 2, 3):
            assert task["attempt"] == attempt
            response = await post_results(client, token, [failed(task, f"boom {attempt}")])
            assert response.json()["results"][0]["outcome"] == "accepted"
            stored = await plane.queue.task(task["task_id"])
            assert stored is not None
            if attempt < 3:
                # Backoff: parked as delayed, not ready. (An immediate lease returning
                # nothing held only while the 50 ms backoff had not elapsed: on a loaded
                # machine it had, and the test failed; the stored state is the proof.)
                assert stored["state"] == "delayed"
                tasks = await lease(client, token, wait=5)
                assert len(tasks) == 1
                task = tasks[0]
        assert stored is not None
        assert stored["state"] == "dead"
        assert [e["message"] for e in stored["errors"]] == ["boom 1", "boom 2", "boom 3"]
        assert [e["attempt"] for e in stored["errors"]] == [1, 2, 3]
        assert await lease(client, token) == []
        dead = await plane.dead_letters.list()
        assert [d["task_id"] for d in dead] == [task["task_id"]]
        # Requeue from the dead letters: a fresh attempt budget, history kept.
        assert (await plane.dead_letters.requeue([task["task_id"]], actor=TEST_ACTOR)).requeued == 1
        tasks = await lease(client, token)
        assert tasks[0]["attempt"] == 1
        stored = await plane.queue.task(task["task_id"])
        assert stored is not None
        assert len(stored["errors"]) == 3
        metrics = (await client.get("/metrics")).text
        assert 'gateway_task_retries_total{audience="parcel",platform="alpha"} 2.0' in metrics
        assert (
            'gateway_tasks_dead_lettered_total{audience="parcel",platform="alpha"} 1.0' in metrics
        )


async def test_a_repeated_failure_report_is_a_duplicate(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    task = await _one_task(parcel_client, token)
    first = await post_results(parcel_client, token, [failed(task, "timeout")])
    again = await post_results(parcel_client, token, [failed(task, "timeout")])
    assert first.json()["results"][0]["outcome"] == "accepted"
    assert again.json()["results"][0]["outcome"] == "duplicate"
    stored = await WorkerPlane(resources, "parcel").queue.task(task["task_id"])
    assert stored is not None
    assert len(stored["errors"]) == 1  # recorded once
    assert stored["attempt"] == 2


async def test_a_non_retryable_failure_dead_letters_at_once(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    task = await _one_task(parcel_client, token)
    await post_results(
        parcel_client, token, [failed(task, "parcel does not exist", retryable=False)]
    )
    dead = await WorkerPlane(resources, "parcel").dead_letters.list()
    assert dead[0]["errors"][0]["message"] == "parcel does not exist"
    assert dead[0]["attempt"] == 1
    # A dead key is free: enqueuing it again is a new task, and requeueing the old one
    # then drops it instead of queueing the parcel twice.
    assert (await enqueue(parcel_client, token, [{"platform": "alpha", "key": "p-1"}]))[
        "enqueued"
    ] == 1
    requeued = await WorkerPlane(resources, "parcel").dead_letters.requeue(
        [task["task_id"]], actor=TEST_ACTOR
    )
    assert (requeued.requeued, requeued.dropped) == (0, 1)


BAD_PARCELS = [
    ("missing field", {"state": None}, ["data", "state"]),
    ("wrong type", {"assessed_value": {"x": 1}}, ["data", "assessed_value"]),
    ("too many digits", {"tax_amount_due": "12345678901234.5"}, ["data", "tax_amount_due"]),
    ("naive time", {"scraped_at": "2026-01-01T00:00:00"}, ["data", "scraped_at"]),
    ("NUL in string", {"owner_name": "Jane\u0000Doe"}, ["data", "owner_name"]),
    ("NUL in extra", {"extra": {"note": "a\u0000b"}}, ["data", "extra"]),
    ("oversize extra", {"extra": {"blob": "x" * 20_000}}, ["data", "extra"]),
    ("unknown field", {"surprise": 1}, ["data", "surprise"]),
    ("not a URL", {"source_url": "javascript:alert(1)"}, ["data", "source_url"]),
]


@pytest.mark.parametrize(("case", "change", "loc"), BAD_PARCELS, ids=[c[0] for c in BAD_PARCELS])
async def test_bad_data_is_rejected_and_never_reaches_the_database(
    resources: Resources,
    parcel_client: httpx.AsyncClient,
    case: str,
    change: dict[str, Any],
    loc: list[str],
) -> None:
    token = await make_token(resources)
    await enqueue(
        parcel_client,
        token,
        [{"platform": "alpha", "key": "bad"}, {"platform": "alpha", "key": "good"}],
    )
    bad, good = await lease(parcel_client, token, limit=2)
    data = parcel_data("bad") | change
    if change.get("state", "") is None:
        del data["state"]
    response = await post_results(
        parcel_client, token, [succeeded(bad, data), succeeded(good, parcel_data("good"))]
    )
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["outcome"] == "rejected"
    assert first["reason"] == "invalid"
    assert loc in [e["loc"] for e in first["errors"]]
    assert "\u0000" not in response.text
    assert second["outcome"] == "accepted"
    assert (
        await _scalar(resources, "SELECT count(*) FROM parcel_history WHERE parcel_id = 'bad'") == 0
    )
    assert await _scalar(resources, "SELECT count(*) FROM parcels") == 1
    # The rejected task's lease is untouched: the worker may still fix and resend it.
    fixed = await post_results(parcel_client, token, [succeeded(bad, parcel_data("bad"))])
    assert fixed.json()["accepted"] == 1


@pytest.mark.parametrize(
    "item",
    [
        "not an object",
        {"task_id": "t", "lease_id": "l", "status": "done"},
        {"task_id": "t", "lease_id": "l", "status": "failed"},
        {"lease_id": "l", "status": "succeeded", "data": {}},
        {"task_id": "t/../x", "lease_id": "l", "status": "failed", "error": {"message": "m"}},
    ],
)
async def test_malformed_items_are_rejected_individually(
    resources: Resources, parcel_client: httpx.AsyncClient, item: Any
) -> None:
    token = await make_token(resources)
    response = await post_results(parcel_client, token, [item])
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert (result["outcome"], result["reason"]) == ("rejected", "invalid")
    assert result["errors"]


async def test_bad_envelopes_are_422(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    token = await make_token(resources)
    headers = {"X-Worker-Token": token}
    bodies: list[dict[str, object]] = [
        {"results": []},
        {"worker_id": "w1", "results": []},
        {"worker_id": "w1", "results": {}},
    ]
    for body in bodies:
        response = await parcel_client.post("/internal/results", json=body, headers=headers)
        assert response.status_code == 422, body


async def test_party_results_are_stored_in_party_tables(
    resources: Resources, client_for: ClientFactory
) -> None:
    token = await make_token(resources, "party")
    async with client_for(Audience.PARTY) as party:
        await enqueue(
            party,
            token,
            [{"platform": "alpha", "key": "acme"}, {"platform": "alpha", "key": "bad"}],
        )
        task, bad = await lease(party, token, limit=2)
        wrong_kind = party_data("bad", kind="robot")
        response = await post_results(
            party, token, [succeeded(task, party_data("acme")), succeeded(bad, wrong_kind)]
        )
        outcomes = [r["outcome"] for r in response.json()["results"]]
        assert outcomes == ["accepted", "rejected"]
        # A parcel result is not a party result.
        other = await post_results(party, token, [succeeded(bad, {**_parcel_only()})])
        assert other.json()["results"][0]["reason"] == "invalid"
    assert (
        await _scalar(resources, "SELECT name FROM parties WHERE party_id = 'acme'")
        == "Acme Holdings LLC"
    )
    assert (
        await _scalar(resources, "SELECT count(*) FROM party_parcels WHERE party_id = 'acme'") == 2
    )
    assert (
        await _scalar(resources, "SELECT doc_type FROM party_documents WHERE party_id = 'acme'")
        == "deed"
    )
    assert await _scalar(resources, "SELECT count(*) FROM party_history") == 1
    assert await _scalar(resources, "SELECT count(*) FROM parcel_history") == 0


def _parcel_only() -> dict[str, Any]:
    return parcel_data("p-9")
