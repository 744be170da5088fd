"""The tier's `webhook_events_per_s` per endpoint: a token bucket spent at claim time.
Deliveries over the rate wait (pending, due), none is dropped. No clocks in the
assertions: buckets are aged by moving `rate_at` back, and the claims of one step (one
transaction, one `now()`) are counted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.webhooks.repository.claim import Candidate, plan
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


@pytest.fixture
def h(stepped: JobsHarness) -> JobsHarness:
    return stepped


async def queue(h: JobsHarness, key: str, endpoint_id: str, n: int) -> None:
    for _ in range(n):
        response = await h.public.post(
            f"/v1/webhooks/{endpoint_id}/test", headers={"X-API-Key": key}
        )
        assert response.status_code == 202, response.text


async def states(h: JobsHarness, key: str, endpoint_id: str) -> list[str]:
    return sorted(x["state"] for x in await deliveries(h, key, endpoint_id))


def test_the_plan_takes_oldest_first_within_each_endpoints_tokens() -> None:
    t = datetime(2026, 12, 4, tzinfo=UTC)
    candidates = [
        Candidate(f"d{i}", e, t.replace(second=i))
        for i, e in enumerate(["a", "b", "a", "a", "c", "b", "c"])
    ]
    tokens: dict[str, float | None] = {"a": 2.7, "b": 0.4, "c": None}
    assert plan(candidates, tokens, limit=10) == ["d0", "d2", "d4", "d6"]
    assert plan(candidates, tokens, limit=2) == ["d0", "d2"]


async def test_an_endpoint_takes_its_tiers_rate_and_a_patch_refreshes_it(h: JobsHarness) -> None:
    key = await h.key()
    wh = await endpoint(h, key, "http://127.0.0.1:65000/x", ["webhook.test"])
    assert wh["events_per_s"] == 10.0  # the pro tier's (built-in default)
    await sql(h, "UPDATE webhook_endpoints SET rate_per_s = NULL WHERE id = :id", id=wh["id"])
    assert (await endpoint_state(h, key, wh["id"]))["events_per_s"] is None
    patched = await h.public.patch(f"/v1/webhooks/{wh['id']}", json={}, headers={"X-API-Key": key})
    assert patched.status_code == 200, patched.text
    assert patched.json()["events_per_s"] == 10.0


async def test_a_step_claims_no_more_than_the_bucket_holds(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
    # 2/s: a full bucket holds 2 tokens, fewer than the in-flight cap (4) would allow.
    await sql(h, "UPDATE webhook_endpoints SET rate_per_s = 2 WHERE id = :id", id=wh["id"])
    await queue(h, key, wh["id"], 5)
    async with dispatcher(h) as d:
        assert await send_once(d) == 2
    assert await states(h, key, wh["id"]) == ["pending"] * 3 + ["succeeded"] * 2


async def test_deliveries_over_the_rate_wait_and_go_as_tokens_come_back(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wh = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
    # One token per 1,000 s: the bucket cannot refill during the test by itself.
    await sql(h, "UPDATE webhook_endpoints SET rate_per_s = 0.001 WHERE id = :id", id=wh["id"])
    await queue(h, key, wh["id"], 3)
    delivery = plane_of(h).delivery
    async with dispatcher(h) as d:
        assert await send_once(d) == 1  # the bucket's one token
        assert await send_once(d) == 0  # empty: the rest wait
        assert await states(h, key, wh["id"]) == ["pending", "pending", "succeeded"]
        await delivery.refresh_backlog()
        [held] = next(iter(delivery.metrics.rate_delayed.collect())).samples
        assert held.value == 2
        # 1,500 s later (moved back, not waited): one token again, capacity 1.
        await sql(
            h,
            "UPDATE webhook_endpoints SET rate_at = rate_at - interval '1500 seconds'"
            " WHERE id = :id",
            id=wh["id"],
        )
        assert await send_once(d) == 1
        assert await send_once(d) == 0
        await sql(
            h,
            "UPDATE webhook_endpoints SET rate_at = rate_at - interval '1500 seconds'"
            " WHERE id = :id",
            id=wh["id"],
        )
        assert await send_once(d) == 1
    assert await states(h, key, wh["id"]) == ["succeeded"] * 3
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 3
    await delivery.refresh_backlog()
    [held] = next(iter(delivery.metrics.rate_delayed.collect())).samples
    assert held.value == 0


async def test_a_limited_endpoint_does_not_hold_up_another(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    slow = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
    fast = await endpoint(h, key, receiver.url("/ok"), ["webhook.test"])
    await sql(h, "UPDATE webhook_endpoints SET rate_per_s = 0.001 WHERE id = :id", id=slow["id"])
    await queue(h, key, slow["id"], 3)
    await queue(h, key, fast["id"], 3)
    async with dispatcher(h) as d:
        assert await send_once(d) == 4  # 1 of the limited one, 3 of the other
        assert await send_once(d) == 0
    assert await states(h, key, slow["id"]) == ["pending", "pending", "succeeded"]
    assert await states(h, key, fast["id"]) == ["succeeded"] * 3
