"""Celery routing end to end: a real Celery worker (examples/celery_worker.py) on the
machine's RabbitMQ and on Redis as broker, the gateway's parcel worker plane routing to
it. Results go through the gateway's results path and commit exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.settings import Settings
from gateway.work.holder import LeaseHolder
from gateway.work.models import TaskIn
from gateway.work.plane import WorkerPlane, routing_service
from gateway.work.routing.router import AudienceLanes, CeleryRouter
from gateway.work.routing.split import goes_to_celery
from tests.support.audit import TEST_ACTOR
from tests.support.celery import (
    Broker,
    broker_for,
    celery_settings,
    celery_worker,
    history_counts,
    history_rows,
    publish_result,
    require_broker,
    require_celery,
    routed_plane,
)
from tests.support.wait import wait_until
from tests.support.work import parcel_data

pytestmark = pytest.mark.integration

HTTP_WORKER = LeaseHolder(1, "http-worker")


def plane_router(plane: WorkerPlane) -> CeleryRouter:
    assert isinstance(plane.queue.lanes, AudienceLanes)
    return plane.queue.lanes.router


@pytest.fixture(params=["amqp", "redis"])
def broker(request: pytest.FixtureRequest, settings: Settings) -> Broker:
    require_celery()
    assert settings.redis_url is not None
    found = broker_for(request.param, settings.redis_url, settings.redis_key_prefix)
    require_broker(found.url, found.options)
    return found


async def test_shares_of_0_30_and_100_percent_route_exactly_the_units_below_them(
    settings: Settings, broker: Broker, tmp_path: Path
) -> None:
    routed = celery_settings(settings, broker, share=0.0)
    route = routed.celery_routes[0]
    async with routed_plane(routed) as (resources, plane):
        service = routing_service(resources)
        with celery_worker(broker, route.queue, tmp_path):
            expected_celery: set[str] = set()
            native: list[str] = []
            for share in (0.0, 0.3, 1.0):
                await service.set_share(route.id, share, TEST_ACTOR)
                tasks = [TaskIn(platform="alpha", key=f"s{share}-{i}") for i in range(60)]

                async def in_force(share: float = share) -> bool:
                    return await plane_router(plane).share_in_force(route.id) == share

                await wait_until(in_force, within_s=5, what="the share reaching the plane")
                outcome = await plane.enqueue(tasks)
                for task, task_id in zip(tasks, outcome.task_ids, strict=True):
                    if goes_to_celery("alpha", task.key, share):
                        expected_celery.add(task_id)
                    else:
                        native.append(task_id)

            async def all_committed() -> bool:
                return set(await history_counts(resources)) >= expected_celery

            await wait_until(all_committed, within_s=60, what="the Celery results committed")
            counts = await history_counts(resources)
            # Exactly the units below each share went to Celery, each committed once.
            assert set(counts) == expected_celery
            assert set(counts.values()) == {1}
            assert 60 + 10 <= len(expected_celery) <= 60 + 26  # all of 100%, about 30%
            # The rest waits for HTTP workers, untouched by Celery.
            leased = await plane.lease(HTTP_WORKER, ["alpha"], 200, 0)
            assert sorted(t.task_id for t in leased.tasks) == sorted(native)
            counted = plane.metrics.routed
            assert counted.labels("alpha", "celery")._value.get() == len(expected_celery)
            assert counted.labels("alpha", "native")._value.get() == len(native)
            # The share gauges (refreshed by the reaper) and one lag per Celery result.
            await plane.reap_once()
            gauge = plane.metrics.celery_share
            assert gauge.labels("*", "*", "configured")._value.get() == 0.0
            assert gauge.labels("*", "*", "in_force")._value.get() == 1.0
            assert lag_count(plane) == len(expected_celery)


def lag_count(plane: WorkerPlane) -> float:
    """Observations of the results-lag histogram."""
    (family,) = plane.metrics.celery_results_lag.collect()
    return next(s.value for s in family.samples if s.name.endswith("_count"))


async def test_a_worker_killed_mid_task_and_restarted_commits_the_result_once(
    settings: Settings, broker: Broker, tmp_path: Path
) -> None:
    routed = celery_settings(settings, broker, share=1.0)
    route = routed.celery_routes[0]
    async with routed_plane(routed) as (resources, plane):
        with celery_worker(broker, route.queue, tmp_path) as worker:
            outcome = await plane.enqueue(
                [TaskIn(platform="alpha", key="slow-1", payload={"delay_s": 120})]
            )
            (task_id,) = outcome.task_ids
            started = worker.started_dir / "slow-1"
            await wait_until(started.exists, within_s=60, what="the task starting on Celery")
            worker.kill()
            assert await history_counts(resources) == {}
            worker.start()

            async def committed() -> bool:
                return task_id in await history_counts(resources)

            await wait_until(committed, within_s=60, what="the redelivered task's result")
            assert await history_counts(resources) == {task_id: 1}
            assert await plane.queue.task(task_id) is None  # done: gone from Redis


async def test_a_result_delivered_twice_commits_once(
    settings: Settings, broker: Broker, tmp_path: Path
) -> None:
    routed = celery_settings(settings, broker, share=1.0)
    route = routed.celery_routes[0]
    async with routed_plane(routed) as (resources, plane):
        with celery_worker(broker, route.queue, tmp_path):
            outcome = await plane.enqueue([TaskIn(platform="alpha", key="twice")])
            (task_id,) = outcome.task_ids

            async def committed() -> bool:
                return task_id in await history_counts(resources)

            await wait_until(committed, within_s=60, what="the first result")
        ((_, lease_id, row),) = await history_rows(resources)
        # A lease Redis no longer knows is counted under platform "unknown".
        duplicates = plane.metrics.completed.labels("unknown", "duplicate")
        before = duplicates._value.get()
        # The same result again, as a broker redelivers it after a lost ack.
        data = parcel_data("twice", platform="alpha", scraped_at=row["scraped_at"].isoformat())
        publish_result(
            broker,
            routed.celery_results_queue + ".parcel",
            task_id,
            lease_id,
            {"status": "succeeded", "data": data},
        )
        await wait_until(
            lambda: duplicates._value.get() > before, within_s=30, what="the second delivery"
        )
        assert await history_counts(resources) == {task_id: 1}


async def test_failures_are_retried_then_dead_lettered_like_native_ones(
    settings: Settings, broker: Broker, tmp_path: Path
) -> None:
    routed = celery_settings(
        settings, broker, share=1.0, max_attempts=2, retry_backoff_base_s=0, retry_backoff_cap_s=0
    )
    route = routed.celery_routes[0]
    async with routed_plane(routed) as (resources, plane):
        with celery_worker(broker, route.queue, tmp_path):
            outcome = await plane.enqueue(
                [
                    TaskIn(platform="alpha", key="flaky", payload={"fail": "retryable"}),
                    TaskIn(platform="alpha", key="fatal", payload={"fail": "fatal"}),
                    TaskIn(platform="alpha", key="raises", payload={"fail": "raise"}),
                ]
            )
            flaky, fatal, raises = outcome.task_ids

            async def all_dead() -> bool:
                dead = await plane.dead_letters.list("alpha", 10)
                return {d["task_id"] for d in dead} == {flaky, fatal, raises}

            await wait_until(all_dead, within_s=60, what="three dead letters")
        by_id = {t: await plane.queue.task(t) for t in (flaky, fatal, raises)}
        assert [e["message"] for e in by_id[flaky]["errors"]] == [  # type: ignore[index]
            "county site failed (retryable)"
        ] * 2
        assert len(by_id[fatal]["errors"]) == 1  # type: ignore[index]
        assert "raised" in by_id[raises]["errors"][-1]["message"]  # type: ignore[index]
        assert len(by_id[raises]["errors"]) == 2  # type: ignore[index]
        assert await history_counts(resources) == {}
