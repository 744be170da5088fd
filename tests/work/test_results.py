"""Completion is per task: a replica that dies between commit and release leaves its
leases to expire, and neither the retry nor the redo of a reclaimed task writes twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.work.holder import LeaseHolder
from gateway.work.plane import WorkerPlane
from gateway.work.queue import Settled
from tests.support.tcp_proxy import started_database_proxy
from tests.support.work import (
    enqueue,
    lease,
    make_token,
    metric_value,
    parcel_data,
    party_data,
    post_results,
    reap_until_reclaimed,
    succeeded,
    work_app,
)

pytestmark = pytest.mark.integration

FAST_REAP: dict[str, Any] = {
    "lease_timeout_s": 0.2,
    "reaper_interval_s": 3600,  # the tests drive the reaper passes themselves
    "retry_backoff_base_s": 0,
    "retry_backoff_cap_s": 0,
}


class _Died(Exception):
    """Stands for the process dying at the release, after the commit."""


def _plane(client: httpx.AsyncClient) -> WorkerPlane:
    plane: WorkerPlane = client._transport.app.state.planes["work"]  # type: ignore[attr-defined]
    return plane


async def _scalar(resources: Resources, sql: str) -> Any:
    async with resources.sessionmaker() as session:
        return (await session.execute(sa.text(sql))).scalar_one()


async def _holder(plane: WorkerPlane, token: str, worker_id: str = "w1") -> LeaseHolder:
    """The lease holder a request with `token` and `worker_id` is."""
    return LeaseHolder((await plane.tokens.verify(token)).token_id, worker_id)


async def _commit_then_die(
    plane: WorkerPlane, monkeypatch: pytest.MonkeyPatch, token: str, item: dict[str, Any]
) -> None:
    """Submit one result whose commit succeeds and whose lease release never happens."""

    async def die(pairs: object) -> list[Settled]:
        raise _Died

    monkeypatch.setattr(plane.queue, "complete", die)
    with pytest.raises(_Died):
        await plane.results.submit(await _holder(plane, token), [item])
    monkeypatch.undo()


# Per audience: result data, its history table, and the current row's table and a column.
AUDIENCES: list[tuple[Audience, Callable[..., dict[str, Any]], str, str, str]] = [
    (Audience.PARCEL, parcel_data, "parcel_history", "parcels", "owner_name"),
    (Audience.PARTY, party_data, "party_history", "parties", "name"),
]


@pytest.mark.parametrize(("audience", "data", "history", "current", "column"), AUDIENCES)
async def test_a_result_for_a_done_task_from_another_lease_is_a_duplicate(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    audience: Audience,
    data: Callable[..., dict[str, Any]],
    history: str,
    current: str,
    column: str,
) -> None:
    first_data, second_data = (data("e-1", **{column: name}) for name in ("First", "Second"))
    count_history = f"SELECT count(*) FROM {history}"  # noqa: S608 - names from AUDIENCES
    async with work_app(settings, audience=audience, **FAST_REAP) as (resources, client):
        token = await make_token(resources, audience.value)
        plane = _plane(client)
        await enqueue(client, token, [{"platform": "alpha", "key": "k"}])
        (first,) = await lease(client, token, limit=1)
        await _commit_then_die(plane, monkeypatch, token, succeeded(first, first_data))
        assert await _scalar(resources, count_history) == 1
        stored = await plane.queue.task(first["task_id"])
        assert stored is not None
        assert stored["state"] == "leased"  # committed, never released: the window

        await reap_until_reclaimed(plane.queue, 1)
        # The queue itself (not the plane, which would drop it) hands the task out again.
        w2 = await _holder(plane, token, "w2")
        (second,) = (await plane.queue.lease(w2, ["alpha"], 1)).tasks
        assert second.attempt == 2
        redo = {"task_id": second.task_id, "lease_id": second.lease_id}
        answer = await post_results(
            client, token, [{**redo, "status": "succeeded", "data": second_data}], "w2"
        )
        assert answer.json()["results"] == [{**redo, "outcome": "duplicate"}]
        # The old lease's retry is a duplicate too, by task, though its lease is gone.
        retry = await post_results(client, token, [succeeded(first, first_data)])
        assert retry.json()["results"][0]["outcome"] == "duplicate"

        assert await _scalar(resources, count_history) == 1
        lease_sql = f"SELECT lease_id FROM {history}"  # noqa: S608 - names from AUDIENCES
        assert await _scalar(resources, lease_sql) == first["lease_id"]
        assert await plane.queue.task(first["task_id"]) is None  # the duplicate released it
        current_sql = f"SELECT {column} FROM {current}"  # noqa: S608 - names from AUDIENCES
        assert await _scalar(resources, current_sql) == "First"
        metrics = (await client.get("/metrics")).text
        committed = metric_value(
            metrics, "gateway_results_committed_total", audience=audience.value, platform="alpha"
        )
        assert committed == 1


async def test_a_reclaimed_task_already_done_is_dropped_not_redone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with work_app(settings, **FAST_REAP) as (resources, client):
        token = await make_token(resources)
        plane = _plane(client)
        await enqueue(client, token, [{"platform": "alpha", "key": k} for k in ("done", "open")])
        done, unfinished = await lease(client, token, limit=2)
        await _commit_then_die(plane, monkeypatch, token, succeeded(done, parcel_data("p-done")))
        await reap_until_reclaimed(plane.queue, 2)  # both leases expire and are requeued

        handed = await lease(client, token, worker_id="w2", limit=10)
        # Only the unfinished task is handed out again; the done one was released.
        assert [(t["task_id"], t["attempt"]) for t in handed] == [(unfinished["task_id"], 2)]
        assert await plane.queue.task(done["task_id"]) is None
        again = await enqueue(client, token, [{"platform": "alpha", "key": "done"}])
        assert again["enqueued"] == 1  # its (platform, key) is free, as for any done task
        assert await _scalar(resources, "SELECT count(*) FROM parcel_history") == 1
        metrics = (await client.get("/metrics")).text
        completed = "gateway_tasks_completed_total"
        assert (
            metric_value(
                metrics, completed, audience="parcel", platform="alpha", outcome="duplicate"
            )
            == 1
        )


async def test_a_lost_lease_of_an_unfinished_task_is_stale(settings: Settings) -> None:
    async with work_app(settings, **FAST_REAP) as (resources, client):
        token = await make_token(resources)
        plane = _plane(client)
        await enqueue(client, token, [{"platform": "alpha", "key": "k"}])
        (lost,) = await lease(client, token, limit=1)
        await reap_until_reclaimed(plane.queue, 1)
        assert len(await lease(client, token, worker_id="w2")) == 1  # re-leased, not done
        late = await post_results(client, token, [succeeded(lost, parcel_data("p-1"))])
        assert late.json()["results"][0]["reason"] == "stale_lease"
        assert await _scalar(resources, "SELECT count(*) FROM parcel_history") == 0


async def test_leasing_hands_reclaimed_tasks_out_while_postgres_is_down(settings: Settings) -> None:
    async with (
        started_database_proxy(settings.database_url or "") as (proxy, proxied),
        work_app(settings, database_url=proxied, **FAST_REAP) as (resources, client),
    ):
        token = await make_token(resources)
        plane = _plane(client)
        await enqueue(client, token, [{"platform": "alpha", "key": "k"}])
        (lost,) = await lease(client, token, limit=1)  # also caches the token
        await reap_until_reclaimed(plane.queue, 1)
        await proxy.cut()
        # The done lookup cannot run; leasing is Redis work and goes on without it.
        handed = await lease(client, token, worker_id="w2")
        assert [(t["task_id"], t["attempt"]) for t in handed] == [(lost["task_id"], 2)]


@pytest.mark.parametrize("environment", ["development", "production"])
def test_the_fault_hook_is_refused_outside_tests(settings: Settings, environment: str) -> None:
    fields = settings.model_dump()
    with pytest.raises(ValueError, match="FAULT_INJECT"):
        Settings(
            _env_file=None,
            **{**fields, "environment": environment, "fault_inject": "exit_after_commit"},
        )
