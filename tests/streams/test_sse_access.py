"""Who may open a job's SSE stream: its owner, with a credential header, and nobody else.

Refusals answer as the jobs routes do (401/403/404 problems), and a long-lived
credential put in the stream's URL is refused with a 400 that never echoes it.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.core.settings import Settings
from tests.support.jobs import JobsHarness, jobs_harness
from tests.support.streams import served

pytestmark = pytest.mark.integration


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def test_another_callers_job_is_not_found(h: JobsHarness, web: httpx.AsyncClient) -> None:
    key = await h.key()
    job = (await h.submit(key, ["a-1"])).json()
    url = f"/v1/jobs/{job['id']}/events"
    for stranger in (await h.key(user="mallory"), await h.key(user="alice")):
        # Another user, and another key of the same user (keys own their jobs apart).
        answer = await web.get(url, headers={"X-API-Key": stranger})
        assert problem(answer, 404)["type"].endswith("/not-found")
    missing = await web.get("/v1/jobs/job_" + "0" * 24 + "/events", headers={"X-API-Key": key})
    problem(missing, 404)
    # A refused stream holds no place, neither of the job nor of the caller.
    redis = h.resources.redis
    places = [
        k async for k in redis.scan_iter(match=f"{h.resources.settings.redis_key_prefix}streams:*")
    ]
    assert [await redis.zcard(k) for k in places] == [0] * len(places)


async def test_a_malformed_job_id_is_a_422(h: JobsHarness, web: httpx.AsyncClient) -> None:
    answer = await web.get("/v1/jobs/nope/events", headers={"X-API-Key": await h.key()})
    assert problem(answer, 422)["errors"][0]["loc"] == ["path", "job_id"]


async def test_an_anonymous_caller_is_refused_as_on_the_jobs_routes(
    h: JobsHarness, web: httpx.AsyncClient, settings: Settings
) -> None:
    job = (await h.submit(await h.key(), ["n-1"])).json()
    url = f"/v1/jobs/{job['id']}"
    jobs_answer = await h.public.get(url)
    answer = await web.get(url + "/events")
    problem(answer, jobs_answer.status_code)
    assert answer.status_code == 401
    assert answer.json()["type"] == jobs_answer.json()["type"]

    # Where anonymous callers are admitted (a tier of their own), they own no jobs.
    async with jobs_harness(settings, anonymous_tier="free") as anon:
        jobs_answer = await anon.public.get(url)
        async with served(anon.public_app) as base, httpx.AsyncClient(base_url=base) as client:
            answer = await client.get(url + "/events")
    problem(answer, jobs_answer.status_code)
    assert answer.status_code == 403


@pytest.mark.parametrize("name", ["api_key", "token", "access_token", "X-API-Key"])
async def test_a_credential_in_the_query_is_a_400_that_does_not_echo_it(
    h: JobsHarness, web: httpx.AsyncClient, name: str
) -> None:
    key = await h.key()
    job = (await h.submit(key, ["q-1"])).json()
    answer = await web.get(f"/v1/jobs/{job['id']}/events", params={name: key})
    body = problem(answer, 400)
    assert body["type"].endswith("/credentials-in-query")
    assert "ticket" in body["detail"]
    assert key not in answer.text
    # Refused even next to a valid header: the URL already leaked it.
    answer = await web.get(
        f"/v1/jobs/{job['id']}/events", params={name: key}, headers={"X-API-Key": key}
    )
    assert problem(answer, 400)["type"].endswith("/credentials-in-query")
