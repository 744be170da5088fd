"""Parcel watches end to end: a worker's committed result that changes a watched field
becomes `parcel.changed` in the watch's changes log, at the owner's webhooks (signed,
verified with `standardwebhooks`) and on the owner's subscribed sockets; an unchanged
re-scrape, an unwatched field, another platform or an older result changes nothing.

Results go the real way: a producer queues the parcel, a worker leases it and posts a
result to the parcel port. The webhook delivery loop is stopped; tests run its steps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.jobs.events import EventKeys
from gateway.public.permissions import Scope
from gateway.watches.metrics import unexported
from gateway.watches.observer import ParcelWatcher
from gateway.watches.publish import ChangePublisher
from gateway.work.records import ParcelResult
from gateway.work.repository.parcel_results import save_parcels
from tests.support.audit import TEST_ACTOR
from tests.support.jobs import JobsHarness
from tests.support.streams import served
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver
from tests.support.webhooks import dispatcher, endpoint, plane_of, send_once, verified
from tests.support.work import enqueue, lease, parcel_data, post_results, succeeded
from tests.support.ws import open_ws

pytestmark = pytest.mark.integration

OVERRIDES: dict[str, Any] = {
    "webhook_allow_private_networks": True,
    "webhook_dispatch_interval_s": 600.0,
}


@pytest.fixture
def h(stepped: JobsHarness) -> JobsHarness:
    return stepped


def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def watch(h: JobsHarness, key: str, parcel_ids: list[str], **body: Any) -> str:
    """POST /v1/watches (asserting 201); the watch id."""
    payload = {"platform": "alpha", "parcel_ids": parcel_ids, **body}
    response = await h.public.post("/v1/watches", json=payload, headers=auth(key))
    assert response.status_code == 201, response.text
    watch_id: str = response.json()["id"]
    return watch_id


async def scrape(h: JobsHarness, parcel_id: str, platform: str = "alpha", **fields: Any) -> str:
    """Queue `parcel_id`, lease it and post a result with `fields` changed from the
    defaults of `parcel_data`; the task id."""
    producer, worker = await h.producer_token(), await h.worker_token()
    await enqueue(h.parcel, producer, [{"platform": platform, "key": parcel_id}])
    [task] = await lease(h.parcel, worker, platforms=platform, limit=1)
    data = parcel_data(parcel_id, platform=platform, **fields)
    response = await post_results(h.parcel, worker, [succeeded(task, data)])
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["outcome"] == "accepted", response.text
    task_id: str = task["task_id"]
    return task_id


async def changes(h: JobsHarness, key: str, watch_id: str) -> list[dict[str, Any]]:
    """The watch's changes log over the API, newest first."""
    response = await h.public.get(f"/v1/watches/{watch_id}/changes", headers=auth(key))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_a_changed_field_is_logged_and_delivered_signed_with_old_and_new(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wid = await watch(h, key, ["w-1"], fields=["lien_status", "tax_amount_due"])
    wh = await endpoint(h, key, receiver.url("/ok"), ["parcel.changed"])

    first_task = await scrape(h, "w-1")
    # The parcel's first result: the watched fields it has are news (from null).
    [first] = await changes(h, key, wid)
    assert first["changes"] == {
        "lien_status": {"old": None, "new": "active"},
        "tax_amount_due": {"old": None, "new": "1234.50"},
    }
    assert first["task_id"] == first_task
    assert first["previous_scraped_at"] is None

    second_task = await scrape(h, "w-1", lien_status="redeemed", tax_amount_due="0")
    latest, _ = await changes(h, key, wid)
    assert latest["changes"] == {
        "lien_status": {"old": "active", "new": "redeemed"},
        "tax_amount_due": {"old": "1234.50", "new": "0.00"},
    }
    assert latest["task_id"] == second_task
    assert latest["watch_id"] == wid
    assert latest["parcel_id"] == "w-1"
    assert latest["platform"] == "alpha"
    assert latest["previous_scraped_at"] is not None

    assert await plane_of(h).delivery.fanout.drain() == 2
    async with dispatcher(h) as d:
        assert await send_once(d) == 2
    payloads = [verified(wh["secret"], got) for got in receiver.received]
    assert {p["type"] for p in payloads} == {"parcel.changed"}
    # Each delivery carries the log's entry as it is listed.
    assert sorted((p["data"] for p in payloads), key=lambda d: d["id"]) == [first, latest]
    assert {got.headers["webhook-id"] for got in receiver.received} == {
        d["id"]
        for d in (
            await h.public.get(f"/v1/webhooks/{wh['id']}/deliveries", headers=auth(key))
        ).json()["items"]
    }
    registry = h.resources.metrics.registry(Audience.PARCEL)
    assert registry.get_sample_value("gateway_parcel_changes_total") == 2


async def test_an_unchanged_rescrape_and_an_unwatched_field_change_nothing(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    key = await h.key()
    wid = await watch(h, key, ["w-2"], fields=["lien_status"])
    await endpoint(h, key, receiver.url("/ok"), ["parcel.changed"])
    await scrape(h, "w-2")
    assert len(await changes(h, key, wid)) == 1

    await scrape(h, "w-2")  # the same facts, scraped again
    await scrape(h, "w-2", owner_name="Someone Else", extra={"zoning": "C2"})  # not watched
    # Both results were committed (the current row is the newest) and recorded nothing.
    assert await h.count("SELECT count(*) FROM parcel_history WHERE parcel_id = 'w-2'") == 3
    assert len(await changes(h, key, wid)) == 1
    assert await plane_of(h).delivery.fanout.drain() == 1  # the first result's only


async def test_an_amount_written_differently_is_the_same_amount(h: JobsHarness) -> None:
    key = await h.key()
    wid = await watch(h, key, ["w-3"], fields=["tax_amount_due", "assessed_value"])
    await scrape(h, "w-3", tax_amount_due="1234.5", assessed_value=125000)
    await scrape(h, "w-3", tax_amount_due=1234.50, assessed_value="125000.00")
    assert len(await changes(h, key, wid)) == 1


async def test_a_result_older_than_the_current_row_changes_nothing(h: JobsHarness) -> None:
    key = await h.key()
    wid = await watch(h, key, ["w-4"], fields=["lien_status"])
    await scrape(h, "w-4", lien_status="active")
    # A straggler scraped an hour ago reads another status: the newer row stays current.
    stale = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    await scrape(h, "w-4", lien_status="sold", scraped_at=stale)
    assert len(await changes(h, key, wid)) == 1
    async with h.resources.sessionmaker() as session:
        status = await session.scalar(
            sa.text("SELECT lien_status FROM parcels WHERE parcel_id = 'w-4'")
        )
    assert status == "active"


async def test_a_result_of_another_platform_is_not_the_watched_parcel(h: JobsHarness) -> None:
    key = await h.key()
    wid = await watch(h, key, ["w-5"], platform="beta")
    await scrape(h, "w-5", platform="alpha")
    assert await changes(h, key, wid) == []
    await scrape(h, "w-5", platform="beta", lien_status="redeemed")
    [change] = await changes(h, key, wid)
    assert change["platform"] == "beta"
    assert change["changes"]["lien_status"]["new"] == "redeemed"


async def test_each_watcher_hears_its_own_and_only_its_own_endpoints_get_it(
    h: JobsHarness, receiver: WebhookReceiver
) -> None:
    alice, bob = await h.key(user="alice"), await h.key(user="bob")
    alice_watch = await watch(h, alice, ["w-6", "w-7"], fields=["owner_name"])
    bob_watch = await watch(h, bob, ["w-6"], fields=["auction_date"])
    alice_hook = await endpoint(h, alice, receiver.url("/ok"), ["parcel.changed"])
    await endpoint(h, bob, receiver.url("/ok"), ["job.completed"])  # not subscribed

    await scrape(h, "w-6")
    await scrape(h, "w-6", owner_name="New Owner LLC", auction_date="2027-06-01")
    assert (await changes(h, alice, alice_watch))[0]["changes"] == {
        "owner_name": {"old": "Jane Doe", "new": "New Owner LLC"}
    }
    assert (await changes(h, bob, bob_watch))[0]["changes"] == {
        "auction_date": {"old": "2027-03-01", "new": "2027-06-01"}
    }
    # Bob's changes log is not Alice's to read.
    other = await h.public.get(f"/v1/watches/{bob_watch}/changes", headers=auth(alice))
    assert other.status_code == 404

    await plane_of(h).delivery.fanout.drain()
    async with dispatcher(h) as d:
        await send_once(d)
    # Two changes of Alice's (the first result, then the new owner), to her endpoint
    # (signed with its secret), and nothing to Bob's, which did not subscribe.
    assert len(receiver.received) == 2
    assert {
        verified(alice_hook["secret"], got)["data"]["watch_id"] for got in receiver.received
    } == {alice_watch}


async def test_a_deleted_watch_records_nothing_more(h: JobsHarness) -> None:
    key = await h.key()
    wid = await watch(h, key, ["w-8"])
    await scrape(h, "w-8")
    await h.public.delete(f"/v1/watches/{wid}", headers=auth(key))
    await scrape(h, "w-8", lien_status="redeemed")
    assert await h.count("SELECT count(*) FROM parcel_changes") == 0


async def test_a_subscribed_socket_gets_parcel_changed_live(h: JobsHarness) -> None:
    key = await h.key()
    wid = await watch(h, key, ["w-9"], fields=["lien_status"])
    await scrape(h, "w-9")
    async with served(h.public_app) as base, open_ws(base, headers=auth(key)) as ws:
        await ws.send({"type": "subscribe", "watches": True})
        assert await ws.recv() == {"type": "subscribed", "watches": True}
        await scrape(h, "w-9", lien_status="redeemed")
        message = await ws.recv()
        [logged, _] = await changes(h, key, wid)
        assert message == {
            "type": "event",
            "event": "parcel.changed",
            "id": logged["id"],
            "data": logged,
        }
        await ws.send({"type": "unsubscribe", "watches": True})
        assert (await ws.until(lambda m: m["type"] == "unsubscribed"))[-1] == {
            "type": "unsubscribed",
            "watches": True,
            "reason": "requested",
        }


async def test_a_ticket_for_some_jobs_does_not_cover_watches(h: JobsHarness) -> None:
    key = await h.key()
    job = (await h.submit(key, ["t-1"])).json()
    ticket = await h.public.post(
        "/v1/stream-tickets", json={"job_ids": [job["id"]]}, headers=auth(key)
    )
    assert ticket.status_code == 201, ticket.text
    async with (
        served(h.public_app) as base,
        open_ws(base, query=f"ticket={ticket.json()['ticket']}") as ws,
    ):
        await ws.send({"type": "subscribe", "watches": True})
        closed = await ws.closed()
    assert closed.code == 4403
    assert "watches" in closed.reason


async def test_a_ticket_covers_watches_only_if_its_issuer_could_read_them(
    h: JobsHarness,
) -> None:
    full = await h.key()
    jobs_only = (
        await h.public_plane.api_keys.create(
            name="jobs only",
            tier="pro",
            user_uid="alice",
            actor=TEST_ACTOR,
            scopes=frozenset({Scope.JOBS_READ}),
        )
    ).secret

    async with served(h.public_app) as base:
        ticket = await h.public.post("/v1/stream-tickets", headers=auth(full))
        async with open_ws(base, query=f"ticket={ticket.json()['ticket']}") as ws:
            await ws.send({"type": "subscribe", "watches": True})
            assert await ws.recv() == {"type": "subscribed", "watches": True}
        # A key without watches:read gets no watches through a ticket either.
        ticket = await h.public.post("/v1/stream-tickets", headers=auth(jobs_only))
        assert ticket.status_code == 201, ticket.text
        async with open_ws(base, query=f"ticket={ticket.json()['ticket']}") as ws:
            await ws.send({"type": "subscribe", "watches": True})
            closed = await ws.closed()
    assert closed.code == 4403


# -- the comparison under concurrency -------------------------------------------------


def _row(task_id: str, owner: str, scraped_at: datetime) -> dict[str, Any]:
    data = parcel_data("c-1", owner_name=owner, scraped_at=scraped_at.isoformat())
    row = ParcelResult.model_validate(data).model_dump()
    row.update(task_id=task_id, lease_id=f"lease-{task_id}")
    return row


async def _waiting_on_a_lock(resources: Resources) -> bool:
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with resources.sessionmaker() as session:
        return int((await session.execute(query)).scalar_one()) > 0


async def test_two_writers_of_one_watched_parcel_each_compare_with_the_row_they_replace(
    h: JobsHarness,
) -> None:
    key = await h.key()
    wid = await watch(h, key, ["c-1"], fields=["owner_name"])
    resources = h.resources
    watcher = ParcelWatcher(
        ChangePublisher(
            resources.redis,
            EventKeys(resources.settings.redis_key_prefix),
            feed_max=100,
            metrics=unexported(),
        ),
        unexported(),
    )
    now = datetime.now(UTC)
    async with resources.sessionmaker() as first, resources.sessionmaker() as second:
        await first.begin()
        await save_parcels(
            first,
            [_row("t-a", "A", now)],
            lambda latest, upsert: watcher.around_upsert(first, latest, upsert),
        )

        async def later_writer() -> None:
            async with second.begin():
                await save_parcels(
                    second,
                    [_row("t-b", "B", now + timedelta(seconds=1))],
                    lambda latest, upsert: watcher.around_upsert(second, latest, upsert),
                )

        racing = asyncio.create_task(later_writer())
        # The second writer waits for the first's lock on the parcel instead of reading
        # the row the first is about to replace.
        await wait_until(lambda: _waiting_on_a_lock(resources), what="the second writer waits")
        await first.commit()
        await racing

    logged = await changes(h, key, wid)
    assert [c["changes"]["owner_name"] for c in reversed(logged)] == [
        {"old": None, "new": "A"},
        {"old": "A", "new": "B"},
    ]
