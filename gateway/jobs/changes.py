"""From a changed job row to its events: the one place that decides which events a
change produces, whoever made it (results, cancel, expiry, an admin, submission).

A statement that changes a job increments `event_seq` by the number of events the
change produces and returns the row; the events take the sequence numbers up to the new
`event_seq`. A results step produces `job.progress`, and when it was the job's last
item also the terminal event (two numbers); cancel, expiry and forced states produce
their terminal event; a finished submission `job.queued`, followed by `job.progress` and
the terminal event when results moved its items while it was being submitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.jobs.events import TERMINAL_EVENT, event_data, make_event
from gateway.jobs.models import JobEvent, JobState
from gateway.jobs.repository.jobs import insert_events


def progress_events(row: Any) -> list[JobEvent]:
    """Events of a results step: progress, then the terminal event if it finished (none
    while the job is still `submitting`: finishing the submission reports its progress)."""
    state = JobState(row.state)
    if state is JobState.SUBMITTING:
        return []
    data = event_data(row)
    if state.terminal:
        return [
            make_event(row.id, row.owner, row.event_seq - 1, "job.progress", row.updated_at, data),
            make_event(
                row.id, row.owner, row.event_seq, TERMINAL_EVENT[state], row.updated_at, data
            ),
        ]
    return [make_event(row.id, row.owner, row.event_seq, "job.progress", row.updated_at, data)]


def submission_events(row: Any) -> list[JobEvent]:
    """Events of a finished submission: `job.queued`, then `job.progress` if results
    already moved items meanwhile, then the terminal event if they finished it."""
    state = JobState(row.state)
    progress = row.succeeded + row.failed
    names = ["job.queued"]
    if progress:
        names.append("job.progress")
    if state.terminal:
        names.append(TERMINAL_EVENT[state])
    first = row.event_seq - len(names) + 1
    events = []
    for offset, name in enumerate(names):
        data = event_data(row)
        if name == "job.queued":
            data["state"] = JobState.QUEUED.value  # the transition this event describes
        events.append(make_event(row.id, row.owner, first + offset, name, row.updated_at, data))
    return events


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
