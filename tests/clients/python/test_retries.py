"""Retries: a real 429 from a tier with a burst of one is waited out per `Retry-After`;
a wait beyond the bound is not; connection errors are retried a bounded number of times;
a POST whose answer was lost is repeated with the same `Idempotency-Key`, and the
gateway replays its first answer instead of acting twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from taxlien_gateway import AsyncClient, RateLimited, Retry, RetryPolicy
from tests.clients.python.conftest import FAST, tiers_file
from tests.support.jobs import JobsHarness
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def harness_overrides(tmp_path: Path) -> dict[str, Any]:
    # One request per burst, back after 2 s: the second request in a row is a 429 whose
    # Retry-After is 2 s (1 s if the machine took over a second between the two).
    return {"tiers_file": tiers_file(tmp_path, burst=1, rate_per_s=0.5)}


async def test_a_429_is_retried_after_its_retry_after_and_then_succeeds(
    h: JobsHarness, base_url: str
) -> None:
    seen: list[Retry] = []
    key = await h.key(tier="tiny")
    async with AsyncClient(base_url, api_key=key, on_retry=seen.append) as gw:
        await gw.me()
        me = await gw.me()  # refused first (the bucket is empty), then served
    assert me.tier.name == "tiny"
    [retry] = seen
    assert retry.status == 429
    assert retry.delay_s in (1.0, 2.0)  # the gateway's Retry-After, whole seconds
    assert gw.rate_limit is not None
    assert gw.rate_limit.policies[0].quota == 1


async def test_a_wait_longer_than_the_bound_raises_at_once_with_the_hint(
    h: JobsHarness, base_url: str
) -> None:
    seen: list[Retry] = []
    key = await h.key(tier="tiny")
    policy = RetryPolicy(max_wait_s=0.5)
    async with AsyncClient(base_url, api_key=key, retry=policy, on_retry=seen.append) as gw:
        await gw.me()
        with pytest.raises(RateLimited) as caught:
            await gw.me()
    assert seen == []
    problem = caught.value
    assert problem.slug == "rate-limited"
    assert problem.retry_after in (1.0, 2.0)
    assert problem.extra["limit"] == "rate"
    assert problem.rate_limit is not None
    assert problem.rate_limit.remaining("burst") == 0


async def test_connection_errors_are_retried_a_bounded_number_of_times() -> None:
    seen: list[Retry] = []
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens
    policy = RetryPolicy(max_retries=2, backoff_s=FAST.backoff_s, jitter=FAST.jitter)
    async with AsyncClient(nowhere, api_key="tlk_x", retry=policy, on_retry=seen.append) as gw:
        with pytest.raises(httpx.ConnectError):
            await gw.jobs.get("job_" + "0" * 24)
    assert [r.attempt for r in seen] == [1, 2]
    assert all(isinstance(r.error, httpx.ConnectError) for r in seen)


class LoseFirstAnswer(httpx.AsyncBaseTransport):
    """A real connection whose first POST reaches the gateway but whose answer is lost
    (a dropped connection after the server acted); it records every request."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []
        self.answers: list[httpx.Response] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.answers.append(response)
        if request.method == "POST" and len(self.requests) == 1:
            await response.aclose()
            raise httpx.ReadError("connection lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_lost_answer_is_retried_with_the_same_key_and_replayed(
    h: JobsHarness, base_url: str
) -> None:
    key = await h.key()  # pro: no 429 in this test
    transport = LoseFirstAnswer()
    http = httpx.AsyncClient(base_url=base_url, transport=transport)
    async with http, AsyncClient(base_url, api_key=key, retry=FAST, http_client=http) as gw:
        job = await gw.jobs.create("parcel_refresh", [{"platform": "alpha", "parcel_id": "i-1"}])
        # A second logical call with the same body is a second job: a new key.
        other = await gw.jobs.create("parcel_refresh", [{"platform": "alpha", "parcel_id": "i-1"}])
    first, retried, second = transport.requests
    assert first.headers["idempotency-key"] == retried.headers["idempotency-key"]
    assert first.headers["idempotency-key"].startswith('"')  # a Structured Field string
    assert second.headers["idempotency-key"] != first.headers["idempotency-key"]
    assert transport.answers[0].status_code == 201  # the gateway did act the first time
    assert transport.answers[1].headers.get("idempotent-replayed") == "true"
    assert transport.answers[0].json()["id"] == job.id  # the replay is the first answer
    assert other.id != job.id
    assert await h.count("SELECT count(*) FROM jobs") == 2


async def test_a_caller_chosen_idempotency_key_replays_across_clients(
    h: JobsHarness, base_url: str
) -> None:
    key = await h.key()
    items = [{"platform": "alpha", "parcel_id": "k-1"}]
    async with AsyncClient(base_url, api_key=key) as gw:
        first = await gw.jobs.create("parcel_refresh", items, idempotency_key="nightly-2026-12-04")
    async with AsyncClient(base_url, api_key=key) as gw:
        again = await gw.jobs.create("parcel_refresh", items, idempotency_key="nightly-2026-12-04")
    assert again.id == first.id
    assert await h.count("SELECT count(*) FROM jobs") == 1
