"""Stream tickets: short-lived, single-use, signed credentials for `?ticket=`.

STUB: the interface is final, the implementation is being written (branch tickets).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from gateway.jobs.owner import Owner


@dataclass(frozen=True)
class Ticket:
    """What a redeemed ticket grants: its owner's jobs (all, or only `job_ids`)."""

    owner: Owner
    job_ids: frozenset[str] | None

    def allows(self, job_id: str) -> bool:
        """Whether the ticket may watch `job_id` (ownership is checked separately)."""
        return self.job_ids is None or job_id in self.job_ids


class IssuedTicket(BaseModel):
    """The answer to `POST /v1/stream-tickets`."""

    ticket: str
    expires_at: datetime
    job_ids: list[str] | None


class StreamTickets:
    """Issues and redeems tickets (see the module docstring)."""

    async def issue(self, owner: Owner, job_ids: list[str] | None) -> IssuedTicket:
        """A ticket for `owner`'s jobs (404 naming any job that is not theirs)."""
        raise NotImplementedError

    async def redeem(self, ticket: str) -> Ticket:
        """The ticket's grant, once (401 with reason ticket_invalid/expired/used)."""
        raise NotImplementedError
