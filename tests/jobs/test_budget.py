"""Job budgets on real PostgreSQL and Redis: credits, open jobs, the jobs-per-hour window.

Each submission here does what the job service will: one session and transaction that
calls `admit`, inserts the job row with the admitted numbers, and commits. Concurrent
submissions meet at a barrier inside their transactions, so they really overlap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.errors import BudgetExceeded, DependencyUnavailable, GatewayError
from gateway.core.redis import create_redis
from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import Settings
from gateway.core.settings.tiers import Tier
from gateway.jobs.budget import (
    WINDOW_S,
    Admission,
    CreationSlot,
    JobBudget,
    JobRateLimited,
    TooManyOpenJobs,
)
from gateway.jobs.models import JobKind
from gateway.jobs.owner import Owner
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


def tier(**limits: Any) -> Tier:
    """A tier with generous request limits and the given job limits."""
    return Tier(name="budget", rate_per_s=100, burst=100, daily_quota=0, max_page_size=10, **limits)


def owner(t: Tier) -> Owner:
    """A fresh owner on tier `t`."""
    return Owner(id=f"api_key:{uuid.uuid4().hex[:12]}", tier=t)


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    """Resources with a database pool big enough for 20 overlapping transactions."""
    s = settings.model_copy(update={"database_pool_size": 25, "database_max_overflow": 5})
    assert s.redis_url is not None
    assert s.database_url is not None
    async with open_resources(s, BackendUrls(s.redis_url, s.database_url)) as opened:
        yield opened


async def insert_job(
    resources: Resources,
    who: Owner,
    *,
    total: int,
    cost_per_item: int = 1,
    state: str = "queued",
    created_at: datetime | None = None,
    **counts: int,
) -> str:
    """A job row as the service writes it (counters as the results path moves them)."""
    job_id = "job_" + uuid.uuid4().hex[:24]
    async with resources.sessionmaker() as session, session.begin():
        await _insert(session, job_id, who, total, cost_per_item, state, created_at, counts)
    return job_id


async def _insert(
    session: AsyncSession,
    job_id: str,
    who: Owner,
    total: int,
    cost_per_item: int,
    state: str,
    created_at: datetime | None,
    counts: dict[str, int],
) -> None:
    await session.execute(
        text(
            "INSERT INTO jobs (id, owner, kind, audience, state, total, cost_per_item,"
            " succeeded, failed, cancelled, expired, created_at)"
            " VALUES (:id, :owner, 'parcel_refresh', 'parcel', :state, :total, :cost,"
            " :succeeded, :failed, :cancelled, :expired, coalesce(:created_at, now()))"
        ),
        {
            "id": job_id,
            "owner": who.id,
            "state": state,
            "total": total,
            "cost": cost_per_item,
            "created_at": created_at,
            "succeeded": counts.get("succeeded", 0),
            "failed": counts.get("failed", 0),
            "cancelled": counts.get("cancelled", 0),
            "expired": counts.get("expired", 0),
        },
    )


async def submit(
    resources: Resources,
    budget: JobBudget,
    who: Owner,
    items: int,
    barrier: asyncio.Barrier | None = None,
) -> Admission | GatewayError:
    """Admit and record one job in one transaction, as the service will; or the refusal."""
    try:
        async with resources.sessionmaker() as session, session.begin():
            await session.connection()  # hold a connection (and a transaction) first
            if barrier is not None:
                await barrier.wait()
            admitted = await budget.admit(session, who, JobKind.PARCEL_REFRESH, items)
            job_id = "job_" + uuid.uuid4().hex[:24]
            await _insert(session, job_id, who, items, admitted.cost_per_item, "queued", None, {})
    except GatewayError as exc:
        return exc
    return admitted


async def submit_concurrently(
    resources: Resources, budget: JobBudget, who: Owner, count: int, items: int = 1
) -> list[Admission | GatewayError]:
    """`count` submissions whose transactions are all open before any admits."""
    barrier = asyncio.Barrier(count)
    return list(
        await asyncio.gather(
            *(submit(resources, budget, who, items, barrier) for _ in range(count))
        )
    )


async def test_20_concurrent_submissions_against_a_budget_for_10_admit_exactly_10(
    resources: Resources,
) -> None:
    budget = JobBudget(resources)
    who = owner(tier(credits_per_day=10, max_open_jobs=100))

    outcomes = await submit_concurrently(resources, budget, who, 20)

    admitted = [o for o in outcomes if isinstance(o, Admission)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert len(admitted) == 10
    assert len(refused) == 10
    assert {(a.cost_per_item, a.credits) for a in admitted} == {(1, 1)}
    assert {r.extra["remaining"] for r in refused} == {0}
    assert {r.extra["period"] for r in refused} == {"day"}
    assert refused[0].status == 402
    assert refused[0].type_uri.endswith("/problems/budget-exceeded")
    usage = await budget.usage(who)
    assert (usage.day.charged, usage.day.reserved, usage.day.remaining) == (0, 10, 0)


async def test_a_job_bigger_than_what_remains_is_refused_with_the_estimate(
    resources: Resources,
) -> None:
    budget = JobBudget(resources)
    t = tier(credits_per_day=100, credit_cost={"parcel_refresh": 3})
    who = owner(t)
    first = await submit(resources, budget, who, 30)
    assert first == Admission(cost_per_item=3, credits=90)

    refused = await submit(resources, budget, who, 4)

    assert isinstance(refused, BudgetExceeded)
    assert refused.extra["remaining"] == 10
    assert refused.extra["estimate"] == 12
    assert refused.extra["limit"] == 100
    resets_at = datetime.fromisoformat(refused.extra["resets_at"])
    assert (resets_at.hour, resets_at.minute, resets_at.second) == (0, 0, 0)
    assert resets_at.utcoffset() == timedelta(0)
    # A job that fits what remains is still admitted.
    assert await submit(resources, budget, who, 3) == Admission(cost_per_item=3, credits=9)


async def test_a_kind_the_tier_does_not_price_costs_one_credit_per_item(
    resources: Resources,
) -> None:
    budget = JobBudget(resources)
    who = owner(tier(credits_per_day=10, credit_cost={"parcel_refresh": 5}))
    async with resources.sessionmaker() as session, session.begin():
        admitted = await budget.admit(session, who, JobKind.PARTY_REFRESH, 4)
    assert admitted == Admission(cost_per_item=1, credits=4)


async def test_open_jobs_are_capped_under_concurrency_and_a_finished_job_frees_one(
    resources: Resources,
) -> None:
    budget = JobBudget(resources)
    who = owner(tier(max_open_jobs=3))

    outcomes = await submit_concurrently(resources, budget, who, 10)

    assert sum(isinstance(o, Admission) for o in outcomes) == 3
    refused = [o for o in outcomes if isinstance(o, TooManyOpenJobs)]
    assert len(refused) == 7
    assert refused[0].status == 429
    assert refused[0].type_uri.endswith("/problems/too-many-open-jobs")
    assert refused[0].extra["max_open_jobs"] == 3

    async with resources.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE jobs SET state = 'completed', succeeded = total WHERE id ="
                " (SELECT id FROM jobs WHERE owner = :o LIMIT 1)"
            ),
            {"o": who.id},
        )
    assert isinstance(await submit(resources, budget, who, 1), Admission)
    assert isinstance(await submit(resources, budget, who, 1), TooManyOpenJobs)


async def test_failed_cancelled_and_expired_items_release_their_credits(
    resources: Resources,
) -> None:
    budget = JobBudget(resources)
    who = owner(tier(credits_per_day=20))
    await insert_job(
        resources,
        who,
        total=10,
        cost_per_item=2,
        state="partially_failed",
        succeeded=4,
        failed=3,
        cancelled=2,
        expired=1,
    )
    usage = await budget.usage(who)
    assert (usage.day.charged, usage.day.reserved, usage.day.remaining) == (8, 0, 12)

    refused = await submit(resources, budget, who, 13)
    assert isinstance(refused, BudgetExceeded)
    assert refused.extra["remaining"] == 12
    assert isinstance(await submit(resources, budget, who, 12), Admission)
    usage = await budget.usage(who)
    assert (usage.day.charged, usage.day.reserved, usage.day.remaining) == (8, 12, 0)


async def test_pending_items_stay_reserved_and_yesterdays_jobs_do_not_count(
    resources: Resources,
) -> None:
    budget = JobBudget(resources)
    who = owner(tier(credits_per_day=10))
    async with resources.sessionmaker() as session:
        day_start = (
            await session.execute(
                text("SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'")
            )
        ).scalar_one()
    await insert_job(resources, who, total=10, created_at=day_start - timedelta(microseconds=1))
    await insert_job(resources, who, total=5, succeeded=2, state="running")

    usage = await budget.usage(who)

    assert (usage.day.charged, usage.day.reserved, usage.day.limit) == (2, 3, 10)
    assert usage.day.remaining == 5
    assert usage.month is None  # the tier has no monthly limit
    assert usage.day.resets_at == day_start + timedelta(days=1)
    now = datetime.now(UTC)
    assert now < usage.day.resets_at <= now + timedelta(days=1, minutes=1)


async def test_the_month_limit_counts_every_job_of_the_month(resources: Resources) -> None:
    budget = JobBudget(resources)
    who = owner(tier(credits_per_day=1000, credits_per_month=10, max_open_jobs=100))
    async with resources.sessionmaker() as session:
        month_start = (
            await session.execute(
                text("SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'")
            )
        ).scalar_one()
    # Last month's job does not count; the one created at the month's first instant does.
    await insert_job(resources, who, total=50, created_at=month_start - timedelta(seconds=1))
    await insert_job(
        resources, who, total=8, succeeded=8, state="completed", created_at=month_start
    )

    refused = await submit(resources, budget, who, 3)

    assert isinstance(refused, BudgetExceeded)
    assert (refused.extra["period"], refused.extra["remaining"]) == ("month", 2)
    resets_at = datetime.fromisoformat(refused.extra["resets_at"])
    assert (resets_at.day, resets_at.hour, resets_at.minute) == (1, 0, 0)
    assert resets_at > datetime.now(UTC)
    assert isinstance(await submit(resources, budget, who, 2), Admission)
    usage = await budget.usage(who)
    assert usage.month is not None
    assert (usage.month.charged, usage.month.reserved, usage.month.remaining) == (8, 2, 0)
    assert usage.month.resets_at == resets_at


async def test_unlimited_tiers_admit_without_a_limit(resources: Resources) -> None:
    budget = JobBudget(resources)
    who = owner(tier(credits_per_day=0, credits_per_month=0))
    assert await submit(resources, budget, who, 10_000) == Admission(1, 10_000)
    usage = await budget.usage(who)
    assert (usage.day.reserved, usage.day.limit, usage.day.remaining) == (10_000, None, None)


async def test_owners_budgets_are_separate(resources: Resources) -> None:
    budget = JobBudget(resources)
    t = tier(credits_per_day=5)
    alice, bob = owner(t), owner(t)
    assert isinstance(await submit(resources, budget, alice, 5), Admission)
    assert isinstance(await submit(resources, budget, alice, 1), BudgetExceeded)
    assert isinstance(await submit(resources, budget, bob, 5), Admission)


# The jobs-per-hour window ---------------------------------------------------------------


@pytest.fixture
async def second_resources(settings: Settings) -> AsyncIterator[Resources]:
    """Another gateway's resources on the same backends (its own Redis client and pool)."""
    assert settings.redis_url is not None
    assert settings.database_url is not None
    async with open_resources(
        settings, BackendUrls(settings.redis_url, settings.database_url)
    ) as opened:
        yield opened


async def _take(budget: JobBudget, who: Owner) -> CreationSlot | JobRateLimited:
    try:
        slot = await budget.take_slot(who)
    except JobRateLimited as exc:
        return exc
    assert slot is not None
    return slot


async def test_the_hourly_window_is_exact_across_two_gateways_and_takes_slots_back(
    resources: Resources, second_resources: Resources
) -> None:
    one, two = JobBudget(resources), JobBudget(second_resources)
    who = owner(tier(jobs_per_hour=5))

    outcomes = await asyncio.gather(*(_take(b, who) for b in [one, two] * 6))

    slots = [o for o in outcomes if isinstance(o, CreationSlot)]
    refused = [o for o in outcomes if isinstance(o, JobRateLimited)]
    assert len(slots) == 5
    assert len(refused) == 7
    assert refused[0].status == 429
    assert refused[0].type_uri.endswith("/problems/job-rate-limited")
    assert all(1 <= int(r.headers["Retry-After"]) <= WINDOW_S for r in refused)

    # A slot whose job was not created after all frees exactly one creation, anywhere.
    await one.give_back(slots[0])
    again = await asyncio.gather(_take(two, who), _take(one, who))
    assert sum(isinstance(o, CreationSlot) for o in again) == 1
    # Another owner has a window of their own.
    assert isinstance(await _take(two, owner(who.tier)), CreationSlot)


async def test_retry_after_is_when_the_oldest_creation_leaves_the_window(
    resources: Resources,
) -> None:
    budget = JobBudget(resources)
    who = owner(tier(jobs_per_hour=3))
    key = budget.window_key(who)
    seconds, micros = await resources.redis.time()
    now_us = seconds * 1_000_000 + micros
    # One creation 3601 s ago (outside the window: trimmed), two inside: 3000 s and 10 s ago.
    await resources.redis.zadd(
        key,
        {
            "stale": now_us - 3601 * 1_000_000,
            "oldest": now_us - 3000 * 1_000_000,
            "recent": now_us - 10 * 1_000_000,
        },
    )

    assert isinstance(await _take(budget, who), CreationSlot)
    refused = await _take(budget, who)

    assert isinstance(refused, JobRateLimited)
    # The oldest leaves the window 600 s after it was seeded (a few seconds of slack for
    # a slow machine between the seed and the check).
    assert 590 <= int(refused.headers["Retry-After"]) <= 600
    assert await resources.redis.zscore(key, "stale") is None


async def test_no_hourly_limit_takes_no_slot(resources: Resources) -> None:
    budget = JobBudget(resources)
    assert await budget.take_slot(owner(tier(jobs_per_hour=0))) is None
    await budget.give_back(None)


async def test_redis_down_is_a_503_and_giving_back_does_not_fail(
    resources: Resources, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    redis = create_redis(server.url, max_connections=4)
    try:
        budget = JobBudget(dataclasses.replace(resources, redis=redis))
        who = owner(tier(jobs_per_hour=5))
        slot = await budget.take_slot(who)
        server.stop()

        with pytest.raises(DependencyUnavailable) as caught:
            await budget.take_slot(who)
        await budget.give_back(slot)  # logged, not raised: the caller's error goes out
    finally:
        server.stop()
        await redis.aclose()
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"]
    assert caught.value.extra["dependency"] == "redis"
