"""The task hooks: jobs hear of their tasks in the results transaction, and of dead ones.

A hook that writes in the session commits with the results or not at all; one that
raises refuses the batch (503) so the worker retries it; a batch no job waits for never
calls it; a task is reported once however often its result is posted. A cancelled
lease's worker hears `lost` and `cancelled`, and a result it still posts is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.work.holder import LeaseHolder
from gateway.work.hooks import AfterCommit, DeadTask, DoneTask
from gateway.work.models import TaskIn
from gateway.work.plane import WorkerPlane
from gateway.work.queue import Settled
from taxlien_worker import Task, TaskContext, Worker, WorkerClient
from tests.support.wait import wait_until
from tests.support.work import (
    enqueue,
    failed,
    lease,
    make_token,
    metric_value,
    parcel_data,
    post_results,
    reap_until_reclaimed,
    succeeded,
    work_app,
)

pytestmark = pytest.mark.integration

PROBE = "CREATE TABLE IF NOT EXISTS hook_probe (task_id text NOT NULL)"


class Boom(Exception):
    """A hook's own failure (not a database outage)."""


class Recorder:
    """A `TaskHooks` that writes a probe row per done task and records what it saw."""

    def __init__(self, resources: Resources, plane: WorkerPlane) -> None:
        self.resources = resources
        self.plane = plane
        self.commits: list[tuple[str, list[DoneTask]]] = []
        self.history_seen: list[int] = []
        self.after: list[tuple[int, bool]] = []
        self.dead: list[tuple[str, list[DeadTask]]] = []
        self.fail_on_commit = False
        self.fail_after_commit = False
        self.fail_on_dead = False

    async def on_commit(
        self, session: AsyncSession, audience: str, done: Sequence[DoneTask]
    ) -> AfterCommit | None:
        self.commits.append((audience, list(done)))
        ids = [d.task_id for d in done]
        # The result rows written just before are visible: the same transaction.
        seen = await session.execute(
            sa.text("SELECT count(*) FROM parcel_history WHERE task_id = ANY(:ids)"), {"ids": ids}
        )
        self.history_seen.append(seen.scalar_one())
        for task_id in ids:
            await session.execute(
                sa.text("INSERT INTO hook_probe (task_id) VALUES (:t)"), {"t": task_id}
            )
        if self.fail_on_commit:
            raise Boom("on_commit")

        async def after() -> None:
            # Runs after the commit and after the leases were released.
            released = all([await self.plane.queue.task(t) is None for t in ids])
            self.after.append((await _count(self.resources, "hook_probe"), released))
            if self.fail_after_commit:
                raise Boom("after_commit")

        return after

    async def on_dead(self, audience: str, dead: Sequence[DeadTask]) -> None:
        self.dead.append((audience, list(dead)))
        if self.fail_on_dead:
            raise Boom("on_dead")


async def _count(resources: Resources, table: str) -> int:
    async with resources.sessionmaker() as session:
        sql = f"SELECT count(*) FROM {table}"  # noqa: S608 - fixed names from the tests
        value: int = (await session.execute(sa.text(sql))).scalar_one()
        return value


def _plane(client: httpx.AsyncClient) -> WorkerPlane:
    plane: WorkerPlane = client._transport.app.state.planes["work"]  # type: ignore[attr-defined]
    return plane


async def _hooked(resources: Resources, client: httpx.AsyncClient) -> Recorder:
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(sa.text(PROBE))
    plane = _plane(client)
    recorder = Recorder(resources, plane)
    plane.results.hook_calls.hooks = recorder
    return recorder


async def _attach(plane: WorkerPlane, waiter: str, *keys: str) -> list[str]:
    tasks = [TaskIn(platform="alpha", key=k) for k in keys]
    return (await plane.queue.attach(waiter, tasks)).task_ids


def _metrics_value(text: str, stage: str) -> float:
    return metric_value(text, "gateway_task_hook_failures_total", audience="parcel", stage=stage)


async def test_the_hook_writes_in_the_results_transaction_once_per_task(
    settings: Settings,
) -> None:
    async with work_app(settings) as (resources, client):
        token = await make_token(resources)
        hooks = await _hooked(resources, client)
        plane = _plane(client)
        (waited,) = await _attach(plane, "job_a", "w")
        await enqueue(client, token, [{"platform": "alpha", "key": "p"}])
        tasks = {t["task_id"]: t for t in await lease(client, token)}
        plain = next(t for tid, t in tasks.items() if tid != waited)

        # A batch no job waits for does not call the hook.
        alone = await post_results(client, token, [succeeded(plain, parcel_data("p"))])
        assert alone.json()["accepted"] == 1
        assert hooks.commits == []

        item = succeeded(tasks[waited], parcel_data("w"))
        answer = await post_results(client, token, [item])
        assert answer.json()["accepted"] == 1
        assert hooks.commits == [("parcel", [DoneTask(waited, "alpha")])]
        assert hooks.history_seen == [1]
        assert await _count(resources, "hook_probe") == 1  # committed with the result
        assert hooks.after == [(1, True)]  # after the commit and the release

        # Posted again (a retry after a lost answer): a duplicate, not reported again.
        again = await post_results(client, token, [item])
        assert again.json()["results"][0]["outcome"] == "duplicate"
        assert len(hooks.commits) == 1
        assert await _count(resources, "hook_probe") == 1


async def test_a_failing_hook_commits_nothing_and_the_worker_retries(settings: Settings) -> None:
    async with work_app(settings) as (resources, client):
        token = await make_token(resources)
        hooks = await _hooked(resources, client)
        plane = _plane(client)
        (tid,) = await _attach(plane, "job_a", "w")
        (task,) = await lease(client, token)
        hooks.fail_on_commit = True
        item = succeeded(task, parcel_data("w"))
        refused = await post_results(client, token, [item])
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert hooks.history_seen == [1]  # it ran after the save, in the transaction...
        assert await _count(resources, "parcel_history") == 0  # ...which rolled back
        assert await _count(resources, "parcel_tasks_done") == 0
        assert await _count(resources, "hook_probe") == 0
        stored = await plane.queue.task(tid)
        assert stored is not None
        assert stored["state"] == "leased"  # not released: the worker keeps its lease
        metrics = (await client.get("/metrics")).text
        assert _metrics_value(metrics, "on_commit") == 1

        hooks.fail_on_commit = False
        retried = await post_results(client, token, [item])
        assert retried.json()["accepted"] == 1
        assert await _count(resources, "parcel_history") == 1
        assert await _count(resources, "hook_probe") == 1


async def test_a_failing_after_commit_is_counted_not_an_error(settings: Settings) -> None:
    async with work_app(settings) as (resources, client):
        token = await make_token(resources)
        hooks = await _hooked(resources, client)
        plane = _plane(client)
        (tid,) = await _attach(plane, "job_a", "w")
        (task,) = await lease(client, token)
        hooks.fail_after_commit = True
        answer = await post_results(client, token, [succeeded(task, parcel_data("w"))])
        assert answer.status_code == 200
        assert answer.json()["accepted"] == 1
        assert hooks.after == [(1, True)]
        assert await plane.queue.task(tid) is None
        metrics = (await client.get("/metrics")).text
        assert _metrics_value(metrics, "after_commit") == 1
        assert _metrics_value(metrics, "on_commit") == 0


async def test_a_dead_letter_a_job_waits_for_goes_to_on_dead(settings: Settings) -> None:
    async with work_app(settings) as (resources, client):
        token = await make_token(resources)
        hooks = await _hooked(resources, client)
        plane = _plane(client)
        (waited,) = await _attach(plane, "job_a", "w")
        await enqueue(client, token, [{"platform": "alpha", "key": "p"}])
        tasks = await lease(client, token)
        answer = await post_results(client, token, [failed(t, "gone", False) for t in tasks])
        assert answer.json()["accepted"] == 2
        # Only the waited task is reported, once, with its error and attempts.
        assert hooks.dead == [("parcel", [DeadTask(waited, "alpha", "gone", 1)])]


async def test_the_reaper_reports_dead_letters_and_survives_a_failing_hook(
    settings: Settings,
) -> None:
    fast: dict[str, Any] = {"lease_timeout_s": 0.05, "max_attempts": 1, "reaper_interval_s": 3600}
    async with work_app(settings, **fast) as (resources, client):
        token = await make_token(resources)
        hooks = await _hooked(resources, client)
        hooks.fail_on_dead = True
        plane = _plane(client)
        (waited,) = await _attach(plane, "job_a", "w")
        assert len(await lease(client, token)) == 1

        async def reported() -> bool:
            await plane.reap_once()  # never raises for the hook's failure
            return bool(hooks.dead)

        await wait_until(reported, what="the expired lease dead-lettered")
        assert hooks.dead == [("parcel", [DeadTask(waited, "alpha", "lease expired", 1)])]
        metrics = (await client.get("/metrics")).text
        assert _metrics_value(metrics, "on_dead") == 1


async def test_a_cancelled_lease_is_lost_to_its_worker_and_its_result_still_stored(
    settings: Settings,
) -> None:
    async with work_app(settings) as (resources, client):
        token = await make_token(resources)
        hooks = await _hooked(resources, client)
        plane = _plane(client)
        cancelled_id, kept_id = await _attach(plane, "job_a", "c", "k")
        await _attach(plane, "job_b", "k")
        tasks = {t["task_id"]: t for t in await lease(client, token)}
        released = await plane.queue.release("job_a", [cancelled_id, kept_id])
        assert released.statuses == ["cancelled_leased", "kept"]

        beat = await client.post(
            "/internal/heartbeat",
            json={"worker_id": "w1", "lease_ids": [t["lease_id"] for t in tasks.values()]},
            headers={"X-Worker-Token": token},
        )
        body: dict[str, Any] = beat.json()
        cancelled_lease = tasks[cancelled_id]["lease_id"]
        assert body["extended"] == [tasks[kept_id]["lease_id"]]
        assert body["lost"] == [cancelled_lease]
        assert body["cancelled"] == [cancelled_lease]
        assert body["not_holder"] == []

        # A worker that finished anyway: the data is stored; no job waits, no hook call.
        late = await post_results(client, token, [succeeded(tasks[cancelled_id], parcel_data("c"))])
        assert late.json()["accepted"] == 1
        assert await _count(resources, "parcel_history") == 1
        assert hooks.commits == []
        assert await plane.queue.task(cancelled_id) is None


@pytest.mark.parametrize("waited_before", [False, True])
async def test_a_job_attached_after_the_check_hears_of_the_result(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, waited_before: bool
) -> None:
    async with work_app(settings) as (resources, client):
        token = await make_token(resources)
        hooks = await _hooked(resources, client)
        plane = _plane(client)
        if waited_before:
            await _attach(plane, "job_early", "k")
        else:
            await enqueue(client, token, [{"platform": "alpha", "key": "k"}])
        (task,) = await lease(client, token)
        real_check = plane.queue.check

        async def check_then_attach(*args: Any) -> list[Settled]:
            checked = await real_check(*args)
            await _attach(plane, "job_late", "k")  # joins the leased task mid-commit
            return checked

        monkeypatch.setattr(plane.queue, "check", check_then_attach)
        answer = await post_results(client, token, [succeeded(task, parcel_data("k"))])
        assert answer.json()["accepted"] == 1
        # In the results transaction only for the job the check saw; the late one is
        # told right after, in a transaction of its own.
        reported = ("parcel", [DoneTask(task["task_id"], "alpha")])
        assert hooks.commits == [reported, reported] if waited_before else [reported]
        assert hooks.after[-1] == (len(hooks.commits), True)


async def test_a_job_attached_to_a_reclaimed_done_task_hears_of_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast: dict[str, Any] = {
        "lease_timeout_s": 0.05,
        "reaper_interval_s": 3600,
        "retry_backoff_base_s": 0,
        "retry_backoff_cap_s": 0,
    }
    async with work_app(settings, **fast) as (resources, client):
        token = await make_token(resources)
        hooks = await _hooked(resources, client)
        plane = _plane(client)
        await enqueue(client, token, [{"platform": "alpha", "key": "k"}])
        (task,) = await lease(client, token)

        async def die(pairs: object) -> list[Settled]:
            raise Boom("the replica died after the commit")

        monkeypatch.setattr(plane.queue, "complete", die)
        with pytest.raises(Boom):
            await plane.results.submit(
                LeaseHolder((await plane.tokens.verify(token)).token_id, "w1"),
                [succeeded(task, parcel_data("k"))],
            )
        monkeypatch.undo()
        await reap_until_reclaimed(plane.queue, 1)
        # The task is live again, so a job attaches to it, though its result is stored.
        assert await _attach(plane, "job_a", "k") == [task["task_id"]]
        assert await lease(client, token, worker_id="w2") == []  # dropped as done
        assert hooks.commits == [("parcel", [DoneTask(task["task_id"], "alpha")])]
        assert await _count(resources, "hook_probe") == 1


async def test_the_python_worker_stops_a_cancelled_task(settings: Settings) -> None:
    started = asyncio.Event()

    async def stuck(task: Task, ctx: TaskContext) -> dict[str, Any]:
        started.set()
        await asyncio.Event().wait()  # never finishes on its own
        raise AssertionError("unreachable")

    # A long lease: the heartbeat, not an expiry, must be what stops the handler.
    async with work_app(settings, lease_timeout_s=600) as (resources, client):
        plane = _plane(client)
        (tid,) = await _attach(plane, "job_a", "k")
        token = await make_token(resources, "parcel", "worker")
        worker = Worker(
            WorkerClient("http://gateway.test", token, "w", http=client),
            ["alpha"],
            stuck,
            wait_s=0.2,
            heartbeat_interval_s=0.05,
        )
        stop = asyncio.Event()

        async def cancel_then_stop() -> None:
            await wait_until(started.is_set, what="the handler starting")
            assert (await plane.queue.release("job_a", [tid])).statuses == ["cancelled_leased"]
            await wait_until(lambda: worker.stats.lost >= 1, what="the heartbeat's lost")
            stop.set()

        watcher = asyncio.create_task(cancel_then_stop())
        await asyncio.wait_for(worker.run(stop), timeout=60)
        await watcher
        assert worker.stats.cancelled >= 1
        assert sum(worker.stats.outcomes.values()) == 0  # nothing posted for it
        stored = await plane.queue.task(tid)
        assert stored is not None
        assert stored["cancelled"] == "1"  # still leased until the lease ends; never retried
