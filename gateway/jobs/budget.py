"""Budgets and job limits per tier: credits per day/month, open jobs, jobs per hour.

Two mechanisms, each exact under concurrency and across replicas:

- **Jobs per hour** is a sliding window in Redis (`lua/job_window.lua`): a sorted set per
  owner of creation timestamps on the Redis clock, trimmed and checked and appended in
  one script, so two replicas cannot both take the last slot. A slot is taken before the
  job's transaction starts (a refused caller costs no database work) and given back
  (`ZREM` of its member) when the job is not created after all.
- **Open jobs and credits** are decided in PostgreSQL, inside the submission's own
  transaction, before its job row is written: the owner's `job_owners` row is locked
  first, so concurrent submissions of one owner are decided one at a time, and each sees
  the rows the previous ones committed (READ COMMITTED takes a fresh snapshot per
  statement, after the lock was granted). The job row the caller then inserts *is* the
  reservation: there is no balance to keep in step.

What a job uses is `cost_per_item * (total - failed - cancelled - expired)`: charged for
items that succeeded, reserved for pending ones, released for the rest. A job counts
against the UTC day (and month) it was created in, by the database clock.

    GatewayError
    ├── BudgetExceeded (402)           credits: `remaining`, `resets_at`, `estimate`, `period`
    └── TooManyRequests (429)
        ├── JobRateLimited             jobs per hour, `Retry-After`
        └── TooManyOpenJobs            max_open_jobs
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.errors import BudgetExceeded, TooManyRequests
from gateway.core.resources import Resources
from gateway.core.settings.tiers import Tier
from gateway.jobs.models import JobKind
from gateway.jobs.owner import Owner
from gateway.jobs.repository import budget as repo
from gateway.kit.lua import register_scripts
from gateway.kit.outage import REDIS_FAILURE, redis_guard, session_scope

log = structlog.get_logger("gateway.jobs.budget")

WINDOW_S = 3600  # the sliding window of `jobs_per_hour`
DEFAULT_COST = 1  # credits per item of a kind the tier's `credit_cost` does not name


class JobRateLimited(TooManyRequests):
    """The owner created `jobs_per_hour` jobs within the last hour."""

    slug = "job-rate-limited"
    title = "Too many jobs created"


class TooManyOpenJobs(TooManyRequests):
    """The owner has `max_open_jobs` jobs that are not finished yet."""

    slug = "too-many-open-jobs"
    title = "Too many open jobs"


@dataclass(frozen=True)
class Admission:
    """A submission the budget admitted: what each item costs and the job's estimate."""

    cost_per_item: int
    credits: int


@dataclass(frozen=True)
class CreationSlot:
    """One taken slot of the owner's jobs-per-hour window (given back if creation fails)."""

    key: str
    member: str


@dataclass(frozen=True)
class PeriodUsage:
    """Credits of one period (UTC day or month): charged, reserved, limit, reset time."""

    period: str
    charged: int
    reserved: int
    limit: int | None
    remaining: int | None
    resets_at: datetime


@dataclass(frozen=True)
class CreditUsage:
    """An owner's credit use today and this month (month only when the tier has one)."""

    day: PeriodUsage
    month: PeriodUsage | None


def cost_per_item(tier: Tier, kind: JobKind) -> int:
    """Credits one item of `kind` costs on `tier` (1 when the tier does not say)."""
    return tier.credit_cost.get(kind.value, DEFAULT_COST)


def _period(period: str, spent: repo.Spent, limit: int, resets_at: datetime) -> PeriodUsage:
    return PeriodUsage(
        period=period,
        charged=spent.charged,
        reserved=spent.reserved,
        limit=limit or None,
        remaining=max(0, limit - spent.used) if limit else None,
        resets_at=resets_at,
    )


class JobBudget:
    """Checks and accounts what owners spend on jobs."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources
        self._window = register_scripts(resources.redis, "gateway.jobs", ["job_window"])[
            "job_window"
        ]

    def window_key(self, owner: Owner) -> str:
        """The Redis key of the owner's jobs-per-hour window."""
        return self.resources.key("jobs", "window", owner.id)

    async def take_slot(self, owner: Owner) -> CreationSlot | None:
        """Take one job creation from the owner's sliding hour (429 when none is left);
        None when the tier has no such limit."""
        limit = owner.tier.jobs_per_hour
        if limit == 0:
            return None
        slot = CreationSlot(key=self.window_key(owner), member=uuid.uuid4().hex)
        with redis_guard():
            taken, retry_us = await self._window(
                keys=[slot.key], args=[limit, WINDOW_S * 1_000_000, slot.member]
            )
        if not int(taken):
            retry_s = max(1, math.ceil(int(retry_us) / 1_000_000))
            raise JobRateLimited(
                f"At most {limit} jobs per hour on tier {owner.tier.name!r};"
                f" the next one can be created in {retry_s} s",
                headers={"Retry-After": str(retry_s)},
                extra={"jobs_per_hour": limit, "retry_after_s": retry_s},
            )
        return slot

    async def give_back(self, slot: CreationSlot | None) -> None:
        """Return a slot whose job was not created after all."""
        if slot is None:
            return
        # Called while another error is on its way to the client: a Redis failure here
        # must not replace it. The slot then stays taken until it leaves the window.
        try:
            await self.resources.redis.zrem(slot.key, slot.member)
        except REDIS_FAILURE as exc:
            log.warning("job_slot_not_given_back", error=type(exc).__name__)

    async def admit(
        self, session: AsyncSession, owner: Owner, kind: JobKind, items: int
    ) -> Admission:
        """Inside the submission's transaction: lock the owner, check open jobs (429) and
        credits (402); the job row written in the same transaction reserves them."""
        tier = owner.tier
        await repo.lock_owner(session, owner.id)
        open_jobs = await repo.count_open(session, owner.id, tier.max_open_jobs)
        if open_jobs >= tier.max_open_jobs:
            raise TooManyOpenJobs(
                f"At most {tier.max_open_jobs} open jobs on tier {tier.name!r}:"
                " wait for one to finish or cancel one",
                extra={"max_open_jobs": tier.max_open_jobs},
            )
        cost = cost_per_item(tier, kind)
        admission = Admission(cost_per_item=cost, credits=cost * items)
        if not tier.credits_per_day and not tier.credits_per_month:
            return admission
        usage = await self._usage(session, tier, owner.id)
        for period in (usage.day, usage.month):
            if period is None or period.remaining is None:
                continue
            if admission.credits > period.remaining:
                raise BudgetExceeded(
                    f"This job needs {admission.credits} credits; {period.remaining} of"
                    f" {period.limit} remain this {period.period} (UTC), until"
                    f" {period.resets_at.isoformat()}",
                    extra={
                        "remaining": period.remaining,
                        "resets_at": period.resets_at.isoformat(),
                        "estimate": admission.credits,
                        "period": period.period,
                        "limit": period.limit,
                    },
                )
        return admission

    async def usage(self, owner: Owner) -> CreditUsage:
        """The owner's credits today (and this month)."""
        async with session_scope(self.resources.sessionmaker) as session:
            return await self._usage(session, owner.tier, owner.id)

    async def _usage(self, session: AsyncSession, tier: Tier, owner: str) -> CreditUsage:
        bounds = await repo.bounds(session)
        monthly = tier.credits_per_month > 0
        since = bounds.month_start if monthly else bounds.day_start
        in_period, today = await repo.spent(session, owner, since, bounds.day_start)
        day = _period("day", today, tier.credits_per_day, bounds.day_end)
        month = (
            _period("month", in_period, tier.credits_per_month, bounds.month_end)
            if monthly
            else None
        )
        return CreditUsage(day=day, month=month)
