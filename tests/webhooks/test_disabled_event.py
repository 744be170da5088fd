"""`webhook.disabled`: an endpoint disabled by delivery (410, or failing too long) is
announced to its owner's other endpoints that subscribed to it, and to no one else."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.support.jobs import JobsHarness
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import (
    deliveries,
    dispatcher,
    endpoint,
    endpoint_state,
    send_once,
    sql,
    verified,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def h(stepped: JobsHarness) -> JobsHarness:
    return stepped


async def queue_test(h: JobsHarness, key: str, endpoint_id: str) -> None:
    response = await h.public.post(f"/v1/webhooks/{endpoint_id}/test", headers={"X-API-Key": key})
    assert response.status_code == 202, response.text


async def test_a_410_is_announced_to_the_owners_other_subscribed_endpoints(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    gone = await endpoint(h, key, receiver.url("/gone"), ["job.completed", "webhook.disabled"])
    watcher = await endpoint(h, key, receiver.url("/ok"), ["webhook.disabled"])
    other_events = await endpoint(h, key, receiver.url("/ok"), ["job.completed"])
    stranger_key = await h.key(user="mallory")
    stranger = await endpoint(h, stranger_key, receiver.url("/ok"), ["webhook.disabled"])
    await queue_test(h, key, gone["id"])
    async with dispatcher(h) as d:
        assert await send_once(d) == 1  # the 410
        state = await endpoint_state(h, key, gone["id"])
        assert (state["enabled"], state["disabled_reason"]) == (False, "gone")
        [queued] = await deliveries(h, key, watcher["id"])
        assert queued["event_type"] == "webhook.disabled"
        assert await deliveries(h, key, other_events["id"]) == []
        assert await deliveries(h, stranger_key, stranger["id"]) == []
        assert await send_once(d) == 1  # the announcement
    announced = [r for r in receiver.received if r.headers["webhook-id"] == queued["id"]]
    [got] = announced
    payload: dict[str, Any] = verified(watcher["secret"], got)
    assert payload["type"] == "webhook.disabled"
    data = payload["data"]
    assert data["endpoint_id"] == gone["id"]
    assert data["reason"] == "gone"
    assert datetime.fromisoformat(data["disabled_at"]) == datetime.fromisoformat(
        state["disabled_at"]
    )
    assert data["last_attempt"]["status"] == 410
    assert data["last_attempt"]["error"] is None
    assert "url" not in data  # it may carry the receiver's token
    [done] = await deliveries(h, key, watcher["id"])
    assert done["state"] == "succeeded"


async def test_an_endpoint_failing_too_long_is_announced_with_when_it_began(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    failing = await endpoint(h, key, receiver.url("/fail"), ["webhook.test"])
    watcher = await endpoint(h, key, receiver.url("/ok"), ["webhook.disabled"])
    days = h.resources.settings.webhook_disable_after_s // 86_400 + 1
    await sql(
        h,
        "UPDATE webhook_endpoints SET failing_since = now() - make_interval(days => :d)"
        " WHERE id = :id",
        d=days,
        id=failing["id"],
    )
    await queue_test(h, key, failing["id"])
    async with dispatcher(h) as d:
        assert await send_once(d) == 1
    state = await endpoint_state(h, key, failing["id"])
    assert (state["enabled"], state["disabled_reason"]) == (False, "failing")
    [queued] = await deliveries(h, key, watcher["id"])
    data = queued["payload"]["data"]
    assert (data["endpoint_id"], data["reason"]) == (failing["id"], "failing")
    assert data["failing_since"] is not None
    assert data["last_attempt"]["status"] == 500


async def test_an_owner_disabling_an_endpoint_is_not_announced(h: JobsHarness) -> None:
    key = await h.key()
    mine = await endpoint(h, key, "http://127.0.0.1:65000/a", ["job.completed"])
    watcher = await endpoint(h, key, "http://127.0.0.1:65000/b", ["webhook.disabled"])
    patched = await h.public.patch(
        f"/v1/webhooks/{mine['id']}", json={"enabled": False}, headers={"X-API-Key": key}
    )
    assert patched.json()["disabled_reason"] == "owner"
    assert await deliveries(h, key, watcher["id"]) == []
