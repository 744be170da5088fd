"""Webhook delivery end to end: real jobs complete, their events fan out of `job_events`
into deliveries, and dispatchers send them to real local receivers (127.0.0.1, allowed by
WEBHOOK_ALLOW_PRIVATE_NETWORKS), signed and verified with the `standardwebhooks`
reference library.

The app's own delivery loop is stopped, so each test drives the fan-out and dispatcher
steps itself (and waits for conditions, never for time); the last test runs the loop.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.settings import Settings
from gateway.webhooks.dispatcher import RETRY_DELAYS_S, retry_delay
from gateway.webhooks.repository import dispatch
from gateway.webhooks.repository.claim import claim
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import (
    NO_WAIT,
    OVERRIDES,
    completed_job,
    deliveries,
    dispatcher,
    endpoint,
    endpoint_state,
    plane_of,
    send_once,
    sql,
    verified,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def h(stepped: JobsHarness) -> JobsHarness:
    return stepped


async def test_a_completed_job_reaches_the_receiver_signed(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/ok"), ["job.completed"])
    job_id = await completed_job(h, key)
    fanout = plane_of(h).delivery.fanout
    assert await fanout.drain() > 0
    async with dispatcher(h) as d:
        assert await send_once(d) == 1

    [got] = receiver.received
    payload = verified(wh["secret"], got)
    assert payload["type"] == "job.completed"
    assert payload["data"]["job_id"] == job_id
    assert payload["data"]["type"] == "job.completed"
    assert payload["data"]["data"]["state"] == "completed"
    [logged] = await deliveries(h, key, wh["id"])
    assert logged["id"] == got.headers["webhook-id"]
    assert logged["state"] == "succeeded"
    assert logged["event_id"] == payload["data"]["id"]
    assert [(a["attempt"], a["status"], a["excerpt"]) for a in logged["attempts"]] == [
        (1, 200, "thanks")
    ]
    # Fanned out once: nothing more to send, and the job's other events (queued,
    # progress) went to no endpoint that did not ask for them.
    assert await fanout.drain() == 0
    async with dispatcher(h) as d:
        assert await send_once(d) == 0
    assert len(receiver.received) == 1


async def test_a_500_is_retried_with_the_same_webhook_id_until_a_200(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/fail"), ["job.completed"])
    await completed_job(h, key)
    await plane_of(h).delivery.fanout.drain()
    async with dispatcher(h, retry_delays_s=NO_WAIT) as d:
        assert await send_once(d) == 1
        [first] = await deliveries(h, key, wh["id"])
        assert first["state"] == "pending"
        assert first["attempts"][0]["status"] == 500
        assert first["attempts"][0]["excerpt"] == "receiver broke"
        assert (await endpoint_state(h, key, wh["id"]))["failing_since"] is not None
        # The receiver is fixed (same endpoint, now answering 200).
        await sql(
            h,
            "UPDATE webhook_endpoints SET url = :u WHERE id = :id",
            u=receiver.url("/ok"),
            id=wh["id"],
        )
        assert await send_once(d) == 1

    failed, ok = receiver.received
    assert (failed.path, ok.path) == ("/fail", "/ok")
    assert failed.headers["webhook-id"] == ok.headers["webhook-id"]
    assert verified(wh["secret"], failed) == verified(wh["secret"], ok)
    [done] = await deliveries(h, key, wh["id"])
    assert done["state"] == "succeeded"
    assert [a["status"] for a in done["attempts"]] == [500, 200]
    assert (await endpoint_state(h, key, wh["id"]))["failing_since"] is None


async def test_a_410_disables_the_endpoint_at_once(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/gone"), ["job.completed"])
    await completed_job(h, key)
    await plane_of(h).delivery.fanout.drain()
    async with dispatcher(h, retry_delays_s=NO_WAIT) as d:
        assert await send_once(d) == 1
        state = await endpoint_state(h, key, wh["id"])
        assert state["enabled"] is False
        assert state["disabled_reason"] == "gone"
        assert state["disabled_at"] is not None
        [logged] = await deliveries(h, key, wh["id"])
        assert logged["state"] == "failed"
        # A disabled endpoint gets no more events, and nothing of it is sent.
        await completed_job(h, key, ["d-2"])
        await plane_of(h).delivery.fanout.drain()
        assert await send_once(d) == 0
    assert len(receiver.received) == 1
    assert len(await deliveries(h, key, wh["id"])) == 1


async def test_a_timeout_is_a_failed_attempt_with_its_error_recorded(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/slow"), ["job.completed"])
    await completed_job(h, key)
    await plane_of(h).delivery.fanout.drain()
    async with dispatcher(h, settings={"webhook_timeout_s": 0.5}) as d:
        assert await send_once(d) == 1
    [logged] = await deliveries(h, key, wh["id"])
    [attempt] = logged["attempts"]
    assert (attempt["status"], attempt["error"]) == (None, "timeout")
    # Retried later per the schedule (the second delay is 5 s, +-10 %).
    assert logged["state"] == "pending"
    assert attempt["next_retry_at"] is not None
    assert attempt["next_retry_at"] == logged["next_attempt_at"]
    assert datetime.fromisoformat(attempt["next_retry_at"]) > datetime.fromisoformat(
        attempt["at"]
    ) + timedelta(seconds=4)


async def test_an_endpoint_failing_longer_than_the_limit_is_disabled(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/fail"), ["job.completed"])
    days = h.resources.settings.webhook_disable_after_s / 86_400 + 1
    await sql(
        h,
        "UPDATE webhook_endpoints SET failing_since = now() - make_interval(days => :d)"
        " WHERE id = :id",
        d=int(days),
        id=wh["id"],
    )
    await completed_job(h, key)
    await plane_of(h).delivery.fanout.drain()
    async with dispatcher(h) as d:
        assert await send_once(d) == 1
    state = await endpoint_state(h, key, wh["id"])
    assert (state["enabled"], state["disabled_reason"]) == (False, "failing")


async def test_a_dead_endpoint_does_not_hold_up_a_healthy_one(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    stuck = await endpoint(h, key, receiver.url("/slow"), ["job.completed"])
    healthy = await endpoint(h, key, receiver.url("/ok"), ["job.completed"])
    await completed_job(h, key, ["d-1"])
    await completed_job(h, key, ["d-2"])
    await plane_of(h).delivery.fanout.drain()
    async with dispatcher(h, per_endpoint=1, settings={"webhook_timeout_s": 60}) as d:

        async def healthy_done() -> bool:
            await d.step()  # never waits for the sends it starts
            states = [x["state"] for x in await deliveries(h, key, healthy["id"])]
            return states == ["succeeded", "succeeded"]

        await wait_until(healthy_done, what="both healthy deliveries succeeded")
        # Meanwhile the stuck endpoint has one delivery on the wire and one waiting:
        # its cap (1) is its own, not the process's.
        states = sorted(x["state"] for x in await deliveries(h, key, stuck["id"]))
        assert states == ["pending", "sending"]
        await wait_until(
            lambda: [r.path for r in receiver.received].count("/slow") == 1,
            what="the stuck endpoint's one request held by the receiver",
        )
        receiver.stop()  # releases the held request before the dispatcher closes


async def test_two_dispatchers_send_each_delivery_exactly_once(
    h: JobsHarness, settings: Settings, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    hooks = [await endpoint(h, key, receiver.url("/ok"), ["job.completed"]) for _ in range(3)]
    for hook in hooks:
        for _ in range(6):
            response = await h.public.post(
                f"/v1/webhooks/{hook['id']}/test", headers={"X-API-Key": key}
            )
            assert response.status_code == 202, response.text
    async with (
        jobs_harness(settings, **OVERRIDES) as other,
        dispatcher(h) as one,
        dispatcher(other) as two,
    ):

        async def all_sent() -> bool:
            await asyncio.gather(one.step(), two.step())
            await asyncio.gather(one.drain(), two.drain())
            for hook in hooks:
                for x in await deliveries(h, key, hook["id"]):
                    if x["state"] != "succeeded":
                        return False
            return True

        await wait_until(all_sent, what="every test delivery succeeded")
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 18
    assert len(set(ids)) == 18
    for hook in hooks:
        for x in await deliveries(h, key, hook["id"]):
            assert [a["attempt"] for a in x["attempts"]] == [1]


async def test_a_claim_whose_lease_ran_out_is_sent_again(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/ok"), ["job.completed"])
    await completed_job(h, key)
    await plane_of(h).delivery.fanout.drain()
    # A replica claims it and dies before sending.
    async with h.resources.sessionmaker() as session, session.begin():
        [lost] = await claim(session, limit=10, per_endpoint=4, lease_s=3600)
    async with dispatcher(h) as d:
        assert await send_once(d) == 0  # leased: nobody else sends it
        await sql(
            h,
            "UPDATE webhook_deliveries SET lease_until = now() - interval '1 second'"
            " WHERE id = :id",
            id=lost.id,
        )
        assert await send_once(d) == 1
    [got] = receiver.received
    assert got.headers["webhook-id"] == lost.id
    verified(wh["secret"], got)
    # The dead replica's late outcome is fenced off: it no longer holds the lease.
    async with h.resources.sessionmaker() as session, session.begin():
        assert not await dispatch.finish(
            session,
            lost,
            state="succeeded",
            next_attempt_at=None,
            attempt={
                "at": datetime.now(UTC),
                "status": 200,
                "error": None,
                "latency_ms": 1.0,
                "excerpt": "",
                "next_retry_at": None,
            },
        )
    [logged] = await deliveries(h, key, wh["id"])
    assert logged["state"] == "succeeded"
    assert [a["attempt"] for a in logged["attempts"]] == [1]


async def test_progress_deliveries_are_coalesced_per_job(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/ok"), ["job.progress"])
    submitted = await h.submit(key, ["c-1", "c-2", "c-3"])
    job_id = submitted.json()["id"]
    token = await h.worker_token()
    await h.wait_state(key, job_id, "queued", "running")
    fanout = plane_of(h).delivery.fanout
    for _ in range(3):
        assert await h.scrape(token, limit=1)
        await fanout.drain()  # each step's progress fanned out before the next one
    await h.wait_state(key, job_id, "completed")
    await fanout.drain()
    [logged] = await deliveries(h, key, wh["id"])
    assert logged["event_type"] == "job.progress"
    assert logged["state"] == "pending"
    assert logged["payload"]["data"]["data"]["progress"]["pending"] == 0
    last_seq = await h.count(
        "SELECT max(seq) FROM job_events WHERE job_id = :j AND type = 'job.progress'", j=job_id
    )
    assert logged["event_id"] == f"{job_id}:{last_seq}"


def test_the_retry_schedule_spans_about_a_day_with_jitter() -> None:
    assert retry_delay(0, rand=lambda: 0.5) == 0
    assert retry_delay(1, rand=lambda: 0.0) == pytest.approx(4.5)
    assert retry_delay(1, rand=lambda: 1.0) == pytest.approx(5.5)
    assert retry_delay(6, rand=lambda: 0.5) == pytest.approx(36_000)
    assert retry_delay(len(RETRY_DELAYS_S)) is None  # then the delivery is dead
    assert 16 * 3600 < sum(RETRY_DELAYS_S) < 24 * 3600


async def test_the_running_plane_delivers_on_its_own(
    settings: Settings, receiver: WebhookReceiver
) -> None:
    # The app's own loop at its usual pace: nobody drives a step.
    overrides = {**OVERRIDES, "webhook_dispatch_interval_s": 0.05}
    async with jobs_harness(settings, **overrides) as live:
        key = await live.key()
        wh = await endpoint(live, key, receiver.url("/ok"), ["job.completed", "webhook.test"])
        job_id = await completed_job(live, key)
        test = await live.public.post(f"/v1/webhooks/{wh['id']}/test", headers={"X-API-Key": key})
        assert test.status_code == 202, test.text

        async def both_arrived() -> bool:
            return len(receiver.received) >= 2

        await wait_until(both_arrived, what="the job's event and the test event arriving")
        types = {verified(wh["secret"], r)["type"]: r for r in receiver.received}
        assert set(types) == {"job.completed", "webhook.test"}
        assert verified(wh["secret"], types["job.completed"])["data"]["job_id"] == job_id


async def test_a_process_sends_at_most_its_in_flight_bound(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    hooks = [await endpoint(h, key, receiver.url("/slow"), ["job.completed"]) for _ in range(3)]
    await completed_job(h, key)
    await plane_of(h).delivery.fanout.drain()
    async with dispatcher(h, max_in_flight=2, settings={"webhook_timeout_s": 60}) as d:
        assert await d.step() == 2
        assert await d.step() == 0  # both slots held by the stuck receivers
        assert d.in_flight == 2
        states = sorted(
            [x["state"] for hook in hooks for x in await deliveries(h, key, hook["id"])]
        )
        assert states == ["pending", "sending", "sending"]
        receiver.stop()  # releases the held requests before the dispatcher closes


async def test_a_gateway_stopped_mid_send_leaves_the_delivery_to_be_sent_again(
    h: JobsHarness, settings: Settings, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/slow"), ["job.completed"])
    overrides = {**OVERRIDES, "webhook_dispatch_interval_s": 0.05, "webhook_timeout_s": 60}
    async with jobs_harness(settings, **overrides) as doomed:
        await completed_job(doomed, key)
        await wait_until(lambda: len(receiver.received) == 1, what="the send on the wire")
    # That gateway stopped with the request unanswered: the delivery is still leased,
    # with no attempt recorded.
    [held] = await deliveries(h, key, wh["id"])
    assert (held["state"], held["attempts"]) == ("sending", [])
    await sql(
        h,
        "UPDATE webhook_endpoints SET url = :u WHERE id = :id",
        u=receiver.url("/ok"),
        id=wh["id"],
    )
    await sql(
        h,
        "UPDATE webhook_deliveries SET lease_until = now() - interval '1 second' WHERE id = :id",
        id=held["id"],
    )
    async with dispatcher(h) as d:
        assert await send_once(d) == 1
    first, again = receiver.received
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == held["id"]
    assert verified(wh["secret"], first) == verified(wh["secret"], again)
    [done] = await deliveries(h, key, wh["id"])
    assert done["state"] == "succeeded"
