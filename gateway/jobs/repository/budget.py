"""SQL of job budgets: the owner lock, open jobs, and credits per UTC day and month.

Credits are never stored as a balance: they are summed from the owner's `jobs` rows
(`cost_per_item` fixed at submission, counters moved by the results path), so no ledger
row moves when an item finishes and a lost update cannot drift a balance. The sums run
on `ix_jobs_owner_created` over the rows of the period only.

Period boundaries come from PostgreSQL's clock (`now()`, the transaction's start), the
same clock that stamps `jobs.created_at`: a job counts against the UTC day (month) it
was created in, whatever the gateway's own clock says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# `date_trunc` on the UTC wall time, then back to a timestamptz: independent of the
# session's TimeZone setting.
_BOUNDS = (
    "SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',"
    " (date_trunc('day', now() AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC',"
    " date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',"
    " (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'"
)


@dataclass(frozen=True)
class Bounds:
    """The current UTC day and month: [start, end) each."""

    day_start: datetime
    day_end: datetime
    month_start: datetime
    month_end: datetime


@dataclass(frozen=True)
class Spent:
    """Credits of the owner's jobs created in one period."""

    charged: int  # cost x succeeded
    reserved: int  # cost x pending (neither succeeded, failed, cancelled nor expired)

    @property
    def used(self) -> int:
        """What counts against the limit: charged plus still reserved."""
        return self.charged + self.reserved


async def lock_owner(session: AsyncSession, owner: str) -> None:
    """Create or lock the owner's `job_owners` row until the transaction ends.

    `DO UPDATE` (not `DO NOTHING`) so the row comes back locked whether it was just
    inserted or already there; a concurrent submission of the same owner waits here.
    """
    await session.execute(
        text(
            "INSERT INTO job_owners (owner) VALUES (:owner) "
            "ON CONFLICT (owner) DO UPDATE SET owner = EXCLUDED.owner"
        ),
        {"owner": owner},
    )


async def count_open(session: AsyncSession, owner: str, cap: int) -> int:
    """The owner's open jobs (submitting, queued, running), counted up to `cap`."""
    result = await session.execute(
        text(
            "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE owner = :owner"
            " AND state IN ('submitting', 'queued', 'running') LIMIT :cap) AS open_jobs"
        ),
        {"owner": owner, "cap": cap},
    )
    return int(result.scalar_one())


async def bounds(session: AsyncSession) -> Bounds:
    """The current UTC day and month by the database clock."""
    row = (await session.execute(text(_BOUNDS))).one()
    return Bounds(*row)


async def spent(
    session: AsyncSession, owner: str, since: datetime, day_start: datetime
) -> tuple[Spent, Spent]:
    """Credits of the owner's jobs created since `since`, and of those since `day_start`.

    One scan serves both periods: pass the month's start as `since` when the month
    matters, else the day's (then both results are the day's).
    """
    result = await session.execute(
        text(
            "SELECT"
            " coalesce(sum(cost_per_item * succeeded), 0),"
            " coalesce(sum(cost_per_item * (total - succeeded - failed - cancelled - expired)),"
            " 0),"
            " coalesce(sum(cost_per_item * succeeded) FILTER (WHERE created_at >= :day), 0),"
            " coalesce(sum(cost_per_item * (total - succeeded - failed - cancelled - expired))"
            " FILTER (WHERE created_at >= :day), 0)"
            " FROM jobs WHERE owner = :owner AND created_at >= :since"
        ),
        {"owner": owner, "since": since, "day": day_start},
    )
    period_charged, period_reserved, day_charged, day_reserved = result.one()
    return (
        Spent(int(period_charged), int(period_reserved)),
        Spent(int(day_charged), int(day_reserved)),
    )
