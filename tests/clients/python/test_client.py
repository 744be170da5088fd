"""The SDK's typed answers and errors against a real gateway: properties, the caller,
jobs, API keys, watches, and problem documents as `GatewayError`s."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from taxlien_gateway import (
    AsyncClient,
    Client,
    Conflict,
    GatewayError,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from taxlien_gateway.models import CreatedJob, Job, Me, Property
from tests.clients.python.conftest import in_thread
from tests.support.jobs import JobsHarness

pytestmark = pytest.mark.integration


async def completed_job(h: JobsHarness, gw: AsyncClient, parcels: list[str]) -> CreatedJob:
    """A job of `parcels` on platform alpha, scraped to completion by a worker."""
    job = await gw.jobs.create(
        "parcel_refresh", [{"platform": "alpha", "parcel_id": p} for p in parcels]
    )
    assert await h.scrape(await h.worker_token())
    return job


async def test_a_property_reads_back_typed_after_a_worker_scraped_it(
    h: JobsHarness, gw: AsyncClient
) -> None:
    await completed_job(h, gw, ["sdk-1"])
    found = await gw.properties.get("sdk-1")
    assert isinstance(found, Property)
    assert found.parcel_id == "sdk-1"
    assert found.tax_amount_due == Decimal("1234.50")  # exact, from the API's string
    assert found.assessed_value == Decimal("125000.00")
    assert found.auction_date == date(2027, 3, 1)
    assert found.extra == {"zoning": "R1"}
    history = [entry async for entry in gw.properties.history("sdk-1")]
    assert [entry.parcel_id for entry in history] == ["sdk-1"]
    assert history[0].accepted_at is not None
    assert [p.parcel_id async for p in gw.properties.search(q="main st")] == ["sdk-1"]


async def test_an_unknown_parcel_is_a_not_found_carrying_the_problem(gw: AsyncClient) -> None:
    with pytest.raises(NotFound) as caught:
        await gw.properties.get("no-such-parcel")
    problem = caught.value
    assert problem.status == 404
    assert problem.type == "https://gateway.taxlien.dev/problems/not-found"
    assert problem.slug == "not-found"
    assert "no-such-parcel" in problem.detail
    assert problem.instance == "/v1/properties/no-such-parcel"
    assert problem.request_id
    assert isinstance(problem, GatewayError)


async def test_a_refused_body_is_a_validation_error_naming_the_field(gw: AsyncClient) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await gw.jobs.create(
            "parcel_refresh", [{"platform": "alpha", "parcel_id": "x"}], priority=5000
        )
    assert caught.value.status == 422
    assert any(e["loc"][-1] == "priority" for e in caught.value.errors)


async def test_a_bad_key_is_unauthorized_with_its_reason(base_url: str) -> None:
    async with AsyncClient(base_url, api_key="tlk_000000000000_nope") as gw:
        with pytest.raises(Unauthorized) as caught:
            await gw.me()
    assert caught.value.reason in {"invalid_api_key", "malformed_api_key"}


async def test_me_and_the_job_lifecycle_with_the_sync_client(
    h: JobsHarness, base_url: str, key: str
) -> None:
    def lifecycle() -> tuple[Me, CreatedJob, Job, Job]:
        with Client(base_url, api_key=key) as gw:
            me = gw.me()
            created = gw.jobs.create(
                "parcel_refresh",
                [
                    {"platform": "alpha", "parcel_id": "s-1"},
                    {"platform": "alpha", "parcel_id": "s-2"},
                ],
                label="sdk",
            )
            cancelled = gw.jobs.cancel(created.id)
            with pytest.raises(Conflict):
                gw.jobs.cancel(created.id)  # finished: 409
            return me, created, gw.jobs.get(created.id), cancelled

    me, created, read, cancelled = await in_thread(lifecycle)
    assert me.kind == "api_key"
    assert me.user_uid == "alice"
    assert me.tier.name == "pro"
    assert me.credits is not None
    assert created.estimate.items == 2
    assert created.progress.pending == 2
    assert created.label == "sdk"
    assert cancelled.state == "cancelled"
    assert read.finished
    assert read.progress.cancelled == 2


async def test_api_keys_are_created_rotated_and_revoked(gw: AsyncClient, base_url: str) -> None:
    issued = await gw.api_keys.create("nightly")
    assert issued.key.startswith("tlk_")
    assert issued.id in [k.id for k in await gw.api_keys.list()]
    async with AsyncClient(base_url, api_key=issued.key) as other:
        assert (await other.me()).id == issued.id
    rotated = await gw.api_keys.rotate(issued.id)
    assert rotated.key != issued.key
    await gw.api_keys.revoke(issued.id)
    async with AsyncClient(base_url, api_key=rotated.key) as other:
        with pytest.raises(Unauthorized):
            await other.me()


async def test_watches_record_the_changes_a_scrape_brings(h: JobsHarness, gw: AsyncClient) -> None:
    watch = await gw.watches.create("alpha", ["w-1"], fields=["lien_status", "tax_amount_due"])
    assert watch.parcel_ids == ["w-1"]
    assert [w.id async for w in gw.watches.list()] == [watch.id]
    assert (await gw.watches.get(watch.id)).fields == ["tax_amount_due", "lien_status"]
    await completed_job(h, gw, ["w-1"])
    [change] = [c async for c in gw.watches.changes(watch.id)]
    assert change.parcel_id == "w-1"
    assert change.changes["tax_amount_due"].old is None
    assert change.changes["tax_amount_due"].new == "1234.50"
    await gw.watches.delete(watch.id)
    with pytest.raises(NotFound):
        await gw.watches.get(watch.id)
