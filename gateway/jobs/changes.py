"""From a changed job row to its events: the one place that decides which events a
change produces, whoever made it (results, cancel, expiry, an admin, submission).

A statement that changes a job increments `event_seq` by the number of events the
change produces and returns the row; the events take the sequence numbers up to the new
`event_seq`. A results step produces `job.progress`, and when it was the job's last
item also the terminal event (two numbers); cancel, expiry and forced states produce
their terminal event; a finished submission `job.queued`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.jobs.events import TERMINAL_EVENT, event_data, make_event
from gateway.jobs.models import JobEvent, JobState
from gateway.jobs.repository.jobs import insert_events


def progress_events(row: Any) -> list[JobEvent]:
    """Events of a results step: progress, then the terminal event if it finished."""
    state = JobState(row.state)
    data = event_data(row)
    if state.terminal:
        return [
            make_event(row.id, row.owner, row.event_seq - 1, "job.progress", row.updated_at, data),
            make_event(
                row.id, row.owner, row.event_seq, TERMINAL_EVENT[state], row.updated_at, data
            ),
        ]
    return [make_event(row.id, row.owner, row.event_seq, "job.progress", row.updated_at, data)]


def state_event(row: Any, type_: str | None = None, reason: str | None = None) -> JobEvent:
    """The one event of a state change (`job.queued` or a terminal event)."""
    state = JobState(row.state)
    name = type_ or TERMINAL_EVENT[state]
    return make_event(
        row.id, row.owner, row.event_seq, name, row.updated_at, event_data(row, reason)
    )


async def record(session: AsyncSession, events: Sequence[JobEvent]) -> list[JobEvent]:
    """Write events to the outbox in the caller's transaction; returns them to publish."""
    await insert_events(
        session,
        [
            {
                "job_id": e.job_id,
                "seq": e.seq,
                "type": e.type,
                "data": e.model_dump(mode="json"),
                "created_at": e.at,
            }
            for e in events
        ],
    )
    return list(events)
