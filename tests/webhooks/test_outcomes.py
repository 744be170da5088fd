"""Recording outcomes in batches: one statement for several attempts, still fenced by
each delivery's lease, one attempt row each, and the endpoints' health applied as if the
outcomes had been recorded one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.webhooks.dispatcher import endpoint_health
from gateway.webhooks.repository import dispatch
from gateway.webhooks.repository.claim import claim
from gateway.webhooks.repository.dispatch import Claimed, Outcome
from tests.support.jobs import JobsHarness
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import (
    deliveries,
    dispatcher,
    endpoint,
    endpoint_state,
    plane_of,
    send_once,
    sql,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 4, tzinfo=UTC)


@pytest.fixture
def h(stepped: JobsHarness) -> JobsHarness:
    return stepped


def outcome(endpoint_id: str, state: str, at_s: int, claimed: Claimed | None = None) -> Outcome:
    c = claimed or Claimed(
        id=f"msg_{at_s}",
        endpoint_id=endpoint_id,
        event_type="webhook.test",
        payload={},
        attempts=0,
        lease_until=T0,
        url="http://x",
        secret="s",
        previous_secret=None,
        previous_secret_until=None,
    )
    status = {"succeeded": 200, "failed": 410}.get(state, 500)
    return Outcome(c, state, None, T0 + timedelta(seconds=at_s), status, None, 1.0, "")


def test_health_of_a_batch_is_its_outcomes_applied_in_time_order() -> None:
    health = endpoint_health(
        [
            outcome("wh_a", "pending", 3),  # a failure after the success: a run starts
            outcome("wh_a", "succeeded", 2),
            outcome("wh_a", "pending", 1),
            outcome("wh_b", "pending", 1),  # then a success: healthy, no run
            outcome("wh_b", "succeeded", 5),
            outcome("wh_c", "succeeded", 1),  # a 410 wins over anything else
            outcome("wh_c", "failed", 2),
            outcome("wh_d", "dead", 4),  # failures only: the run spans them
            outcome("wh_d", "pending", 2),
        ]
    )
    assert health.healthy == ["wh_a", "wh_b"]
    assert health.failing == {
        "wh_a": (T0 + timedelta(seconds=3), T0 + timedelta(seconds=3)),
        "wh_d": (T0 + timedelta(seconds=2), T0 + timedelta(seconds=4)),
    }
    assert health.gone == ["wh_c"]


async def test_a_batch_records_each_attempt_once_and_only_under_its_lease(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
    for _ in range(3):
        response = await h.public.post(f"/v1/webhooks/{wh['id']}/test", headers={"X-API-Key": key})
        assert response.status_code == 202
    async with h.resources.sessionmaker() as session, session.begin():
        held = await claim(session, limit=10, per_endpoint=4, lease_s=3600)
    assert len(held) == 3
    # One of them was taken back and claimed again meanwhile: its old lease is void.
    stale = held[0]
    await sql(
        h,
        "UPDATE webhook_deliveries SET lease_until = lease_until + interval '1 second'"
        " WHERE id = :id",
        id=stale.id,
    )
    now = datetime.now(UTC)
    batch = [Outcome(c, "succeeded", None, now, 200, None, 2.0, "thanks") for c in held]
    async with h.resources.sessionmaker() as session, session.begin():
        recorded = await dispatch.finish_many(session, batch)
    assert recorded == {c.id for c in held[1:]}
    async with h.resources.sessionmaker() as session, session.begin():
        # The same outcomes again (a retried write): the leases are spent, nothing twice.
        assert await dispatch.finish_many(session, batch) == set()
    logged = {x["id"]: x for x in await deliveries(h, key, wh["id"])}
    assert logged[stale.id]["state"] == "sending"
    assert logged[stale.id]["attempts"] == []
    for c in held[1:]:
        assert logged[c.id]["state"] == "succeeded"
        assert [(a["attempt"], a["status"]) for a in logged[c.id]["attempts"]] == [(1, 200)]


async def test_outcomes_of_many_endpoints_finished_together_apply_to_each(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    ok = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
    gone = await endpoint(h, key, receiver.url("/gone"), ["webhook.test"])
    failing = await endpoint(h, key, receiver.url("/fail"), ["webhook.test"])
    recovering = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
    days = h.resources.settings.webhook_disable_after_s // 86_400 + 1
    await sql(
        h,
        "UPDATE webhook_endpoints SET failing_since = now() - make_interval(days => :d)"
        " WHERE id = :id",
        d=days,
        id=failing["id"],
    )
    await sql(
        h, "UPDATE webhook_endpoints SET failing_since = now() WHERE id = :id", id=recovering["id"]
    )
    for hook in (ok, gone, failing, recovering):
        for _ in range(2):
            response = await h.public.post(
                f"/v1/webhooks/{hook['id']}/test", headers={"X-API-Key": key}
            )
            assert response.status_code == 202
    metrics = plane_of(h).delivery.metrics
    async with dispatcher(h, metrics=metrics) as d:
        assert await send_once(d) == 8
    assert sorted(x["state"] for x in await deliveries(h, key, ok["id"])) == ["succeeded"] * 2
    assert sorted(x["state"] for x in await deliveries(h, key, gone["id"])) == ["failed"] * 2
    assert sorted(x["state"] for x in await deliveries(h, key, failing["id"])) == ["pending"] * 2
    states = {
        name: await endpoint_state(h, key, hook["id"])
        for name, hook in [("ok", ok), ("gone", gone), ("failing", failing), ("rec", recovering)]
    }
    assert (states["ok"]["enabled"], states["ok"]["failing_since"]) == (True, None)
    assert (states["gone"]["enabled"], states["gone"]["disabled_reason"]) == (False, "gone")
    assert (states["failing"]["enabled"], states["failing"]["disabled_reason"]) == (
        False,
        "failing",
    )
    assert (states["rec"]["enabled"], states["rec"]["failing_since"]) == (True, None)
    # Two 410s of one endpoint disable it once.
    [gone_count] = [
        s.value
        for s in next(iter(metrics.disabled.collect())).samples
        if s.labels["reason"] == "gone" and s.name.endswith("_total")
    ]
    assert gone_count == 1
