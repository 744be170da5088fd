"""`/v1/watches` over the public API: create, read, page, delete; validation, the tier's
caps and isolation between principals. (What a watch then records is in
`test_changes.py`.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.core.settings import Settings
from gateway.core.settings.tiers import DEFAULT_TIERS
from gateway.watches.models import WATCHABLE_FIELDS
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.work import enqueue

pytestmark = pytest.mark.integration

# The delivery loop has nothing to do here; one step per 10 minutes keeps it quiet.
IDLE_DELIVERY = {"webhook_dispatch_interval_s": 600.0}


@pytest.fixture
async def h(settings: Settings) -> AsyncIterator[JobsHarness]:
    async with jobs_harness(settings, **IDLE_DELIVERY) as harness:
        yield harness


def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def create(h: JobsHarness, key: str, **body: Any) -> dict[str, Any]:
    """POST /v1/watches (asserting 201); the watch."""
    payload = {"platform": "alpha", "parcel_ids": ["p-1"], **body}
    response = await h.public.post("/v1/watches", json=payload, headers=auth(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def tiers_file(tmp_path: Path, **free: int) -> Path:
    """A TIERS_FILE with the default tiers and `free` changed as given."""
    tiers = {
        name: {k: v for k, v in tier.model_dump().items() if k != "name"}
        for name, tier in DEFAULT_TIERS.items()
    }
    tiers["free"].update(free)
    path = tmp_path / "tiers.json"
    path.write_text(json.dumps({"tiers": tiers}))
    return path


async def test_create_answers_201_with_location_and_the_watch(h: JobsHarness) -> None:
    key = await h.key()
    response = await h.public.post(
        "/v1/watches",
        json={"platform": "alpha", "parcel_ids": ["p-2", "p-1", "p-2"]},
        headers=auth(key),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"].startswith("wat_")
    assert response.headers["location"] == f"/v1/watches/{created['id']}"
    # Repeated ids count once; omitted fields mean every watchable field.
    assert created["parcel_ids"] == ["p-1", "p-2"]
    assert created["fields"] == list(WATCHABLE_FIELDS)
    assert created["platform"] == "alpha"
    read = await h.public.get(response.headers["location"], headers=auth(key))
    assert read.status_code == 200
    assert read.json() == created


async def test_fields_are_kept_in_canonical_order_without_repeats(h: JobsHarness) -> None:
    key = await h.key()
    created = await create(
        h, key, fields=["auction_date", "lien_status", "auction_date", "owner_name"]
    )
    assert created["fields"] == ["owner_name", "lien_status", "auction_date"]


async def test_list_is_newest_first_and_pages_with_a_cursor(h: JobsHarness) -> None:
    key = await h.key()
    ids = [(await create(h, key, parcel_ids=[f"p-{i}"]))["id"] for i in range(3)]
    first = await h.public.get("/v1/watches", params={"limit": 2}, headers=auth(key))
    assert first.status_code == 200
    page = first.json()
    assert [w["id"] for w in page["items"]] == ids[::-1][:2]
    assert page["items"][0]["parcel_ids"] == ["p-2"]
    rest = await h.public.get(
        "/v1/watches", params={"limit": 2, "cursor": page["next_cursor"]}, headers=auth(key)
    )
    assert [w["id"] for w in rest.json()["items"]] == [ids[0]]
    assert rest.json()["next_cursor"] is None


async def test_delete_removes_the_watch(h: JobsHarness) -> None:
    key = await h.key()
    wid = (await create(h, key))["id"]
    deleted = await h.public.delete(f"/v1/watches/{wid}", headers=auth(key))
    assert deleted.status_code == 204
    assert (await h.public.get(f"/v1/watches/{wid}", headers=auth(key))).status_code == 404
    again = await h.public.delete(f"/v1/watches/{wid}", headers=auth(key))
    assert again.status_code == 404
    assert await h.count("SELECT count(*) FROM parcel_watch_items") == 0


async def test_another_principals_watch_is_404_everywhere(h: JobsHarness) -> None:
    alice, bob = await h.key(user="alice"), await h.key(user="bob")
    wid = (await create(h, alice))["id"]
    for method, path in [
        ("GET", f"/v1/watches/{wid}"),
        ("DELETE", f"/v1/watches/{wid}"),
        ("GET", f"/v1/watches/{wid}/changes"),
    ]:
        response = await h.public.request(method, path, headers=auth(bob))
        assert response.status_code == 404, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await h.public.get("/v1/watches", headers=auth(bob))).json()["items"] == []
    # Still there for its owner.
    assert (await h.public.get(f"/v1/watches/{wid}", headers=auth(alice))).status_code == 200


async def test_anonymous_callers_own_no_watches(settings: Settings) -> None:
    async with jobs_harness(settings, **IDLE_DELIVERY, anonymous_tier="free") as anon:
        created = await anon.public.post(
            "/v1/watches", json={"platform": "alpha", "parcel_ids": ["p-1"]}
        )
        listed = await anon.public.get("/v1/watches")
    assert created.status_code == 403
    assert "account" in created.json()["detail"]
    assert listed.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"platform": "gamma", "parcel_ids": ["p-1"]}, "platform"),
        ({"platform": "Alpha!", "parcel_ids": ["p-1"]}, "platform"),
        ({"parcel_ids": ["p-1"]}, "platform"),
        ({"platform": "alpha", "parcel_ids": []}, "parcel_ids"),
        ({"platform": "alpha"}, "parcel_ids"),
        ({"platform": "alpha", "parcel_ids": [""]}, "parcel_ids"),
        ({"platform": "alpha", "parcel_ids": ["x" * 257]}, "parcel_ids"),
        ({"platform": "alpha", "parcel_ids": [f"p-{i}" for i in range(1001)]}, "parcel_ids"),
        ({"platform": "alpha", "parcel_ids": ["p-1"], "fields": []}, "fields"),
        ({"platform": "alpha", "parcel_ids": ["p-1"], "fields": ["zoning"]}, "fields"),
        ({"platform": "alpha", "parcel_ids": ["p-1"], "webhook": "https://x"}, "webhook"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field_and_create_nothing(
    h: JobsHarness, body: dict[str, Any], field: str
) -> None:
    key = await h.key()
    response = await h.public.post("/v1/watches", json=body, headers=auth(key))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["loc"][:2] == ["body", field]
    assert await h.count("SELECT count(*) FROM parcel_watches") == 0


async def test_malformed_ids_are_422_unknown_ones_404_bad_cursors_422(h: JobsHarness) -> None:
    key = await h.key()
    assert (await h.public.get("/v1/watches/nope", headers=auth(key))).status_code == 422
    unknown = await h.public.get("/v1/watches/wat_" + "0" * 24, headers=auth(key))
    assert unknown.status_code == 404
    bad = await h.public.get("/v1/watches", params={"cursor": "!!"}, headers=auth(key))
    assert bad.status_code == 422
    wid = (await create(h, key))["id"]
    bad = await h.public.get(
        f"/v1/watches/{wid}/changes", params={"cursor": "!!"}, headers=auth(key)
    )
    assert bad.status_code == 422


async def test_a_platform_the_queue_has_seen_is_known(h: JobsHarness) -> None:
    # No JOB_PLATFORMS entry for "delta", but a producer queued work for it.
    key = await h.key()
    refused = await h.public.post(
        "/v1/watches", json={"platform": "delta", "parcel_ids": ["p-1"]}, headers=auth(key)
    )
    assert refused.status_code == 422
    await enqueue(h.parcel, await h.producer_token(), [{"platform": "delta", "key": "p-1"}])
    assert (await create(h, key, platform="delta"))["platform"] == "delta"


async def test_the_tier_caps_are_429_and_a_deleted_watch_frees_its_place(
    settings: Settings, tmp_path: Path
) -> None:
    path = tiers_file(tmp_path, max_watches=2, max_watched_parcels=3)
    async with jobs_harness(settings, **IDLE_DELIVERY, tiers_file=path) as h:
        key = await h.key(tier="free")
        first = await create(h, key, parcel_ids=["p-1", "p-2"])
        # Three parcels at most: two watched, this would make four.
        too_many_parcels = await h.public.post(
            "/v1/watches",
            json={"platform": "alpha", "parcel_ids": ["p-3", "p-4"]},
            headers=auth(key),
        )
        assert too_many_parcels.status_code == 429
        problem = too_many_parcels.json()
        assert problem["type"].endswith("/too-many-watches")
        assert problem["max_watched_parcels"] == 3
        assert "you watch 2" in problem["detail"]
        await create(h, key, parcel_ids=["p-3"])
        too_many_watches = await h.public.post(
            "/v1/watches", json={"platform": "alpha", "parcel_ids": ["p-9"]}, headers=auth(key)
        )
        assert too_many_watches.status_code == 429
        assert too_many_watches.json()["max_watches"] == 2
        # Another principal has its own caps; a deleted watch frees its places.
        await create(h, await h.key(tier="free", user="bob"))
        await h.public.delete(f"/v1/watches/{first['id']}", headers=auth(key))
        await create(h, key, parcel_ids=["p-5", "p-6"])


async def test_concurrent_creations_never_exceed_the_cap(
    settings: Settings, tmp_path: Path
) -> None:
    path = tiers_file(tmp_path, max_watches=3)
    async with jobs_harness(settings, **IDLE_DELIVERY, tiers_file=path) as h:
        key = await h.key(tier="free")
        responses = await asyncio.gather(
            *[
                h.public.post(
                    "/v1/watches",
                    json={"platform": "alpha", "parcel_ids": [f"p-{i}"]},
                    headers=auth(key),
                )
                for i in range(6)
            ]
        )
        assert sorted(r.status_code for r in responses) == [201] * 3 + [429] * 3
        assert await h.count("SELECT count(*) FROM parcel_watches") == 3


async def test_a_tier_without_watches_is_refused_with_403(
    settings: Settings, tmp_path: Path
) -> None:
    path = tiers_file(tmp_path, max_watches=0)
    async with jobs_harness(settings, **IDLE_DELIVERY, tiers_file=path) as h:
        response = await h.public.post(
            "/v1/watches",
            json={"platform": "alpha", "parcel_ids": ["p-1"]},
            headers=auth(await h.key(tier="free")),
        )
        assert response.status_code == 403
        assert "free" in response.json()["detail"]
        await create(h, await h.key(tier="pro"))
