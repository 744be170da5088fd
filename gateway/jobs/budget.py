"""Budgets and job limits per tier: credits per day/month, open jobs, jobs per hour.

Skeleton: implemented by the budget work of issue 12; signatures are final.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.resources import Resources
from gateway.jobs.models import JobKind
from gateway.jobs.owner import Owner


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


class JobBudget:
    """Checks and accounts what owners spend on jobs."""

    def __init__(self, resources: Resources) -> None:
        self.resources = resources

    async def take_slot(self, owner: Owner) -> CreationSlot | None:
        """Take one job creation from the owner's sliding hour (429 when none is left);
        None when the tier has no such limit."""
        raise NotImplementedError

    async def give_back(self, slot: CreationSlot | None) -> None:
        """Return a slot whose job was not created after all."""
        raise NotImplementedError

    async def admit(
        self, session: AsyncSession, owner: Owner, kind: JobKind, items: int
    ) -> Admission:
        """Inside the submission's transaction: lock the owner, check open jobs (429) and
        credits (402); the job row written in the same transaction reserves them."""
        raise NotImplementedError

    async def usage(self, owner: Owner) -> CreditUsage:
        """The owner's credits today (and this month)."""
        raise NotImplementedError
