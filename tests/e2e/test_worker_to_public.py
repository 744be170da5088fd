"""Across the planes: a parser worker's result is what the public API serves.

Issue 4's built-in origin reads the parcel tables that the worker plane fills; this test
drives both ports in one process, sharing resources as `gateway serve` does.
"""

from __future__ import annotations

import pytest

from gateway.apps.parcel_internal import create_parcel_internal_app
from gateway.core.settings import Settings
from tests.conftest import app_client
from tests.support.public import public_app
from tests.support.work import enqueue, lease, make_token, parcel_data, post_results, succeeded

pytestmark = pytest.mark.integration


async def test_a_worker_result_is_served_by_the_public_api(settings: Settings) -> None:
    async with public_app(settings, parser_service_url=None) as public:
        resources = public.resources
        producer = await make_token(resources, "parcel", "producer")
        api_key = await public.key(tier="free")
        async with app_client(create_parcel_internal_app(resources)) as parcel:
            await enqueue(parcel, producer, [{"platform": "alpha", "key": "12-345-678"}])
            (task,) = await lease(parcel, producer, platforms="alpha")
            data = parcel_data("12-345-678", owner_name="First Owner", tax_amount_due="99.10")
            answer = await post_results(parcel, producer, [succeeded(task, data)])
            assert answer.json()["accepted"] == 1

            url = "/v1/properties/12-345-678"
            first = await public.client.get(url, headers={"X-API-Key": api_key})
            assert first.status_code == 200, first.text
            assert first.json()["owner_name"] == "First Owner"
            assert first.json()["tax_amount_due"] == "99.10"
            history = await public.client.get(url + "/history", headers={"X-API-Key": api_key})
            assert history.status_code == 200
            assert history.text.count("First Owner") == 1

            # A second scrape of the same parcel updates the current row and appends history.
            await enqueue(parcel, producer, [{"platform": "alpha", "key": "12-345-678"}])
            (again,) = await lease(parcel, producer, platforms="alpha")
            newer = parcel_data("12-345-678", owner_name="Second Owner")
            await post_results(parcel, producer, [succeeded(again, newer)])
            search = await public.client.get(
                "/v1/properties/search", params={"q": "Second"}, headers={"X-API-Key": api_key}
            )
            assert search.status_code == 200, search.text
            assert "12-345-678" in search.text
            history = await public.client.get(
                url + "/history",
                params={"limit": 10},
                headers={"X-API-Key": api_key, "Cache-Control": "no-cache"},
            )
            assert history.status_code == 200
