"""Commit the sample through the worker plane's results path, once.

Each scrape not yet in the history becomes a task (key `demo:<id>:<scraped_at>`, on the
record's own platform, top priority), leased here by the holder `gateway-demo` and
completed with `ResultService.submit`, built with the same hooks the worker ports use.
Seeding leases are short (`SEED_LEASE_S`): a seeding cut short leaves its tasks to the
reaper within a minute, and the next run picks them up again.

A task someone else queued on the same platform can come back from a lease (only if it
has the same top priority); it is failed as retryable at once, with a message saying
why, so it goes back to its queue after the usual backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.demo import sample
from gateway.demo.repository import stored_scrapes
from gateway.jobs.plane import tracker_for
from gateway.kit.cli_errors import CliError
from gateway.watches.plane import watcher_for
from gateway.work.holder import LeaseHolder
from gateway.work.models import TaskIn
from gateway.work.plane import WorkerPlane

HOLDER = LeaseHolder(token_id=0, worker_id="gateway-demo")
SEED_LEASE_S = 60.0
CHUNK = 100


@dataclass(frozen=True)
class Seeded:
    """What one audience's seeding found and wrote."""

    audience: str
    records: int  # distinct parcels (parties) in the sample
    scrapes: int  # scrapes in the sample
    written: int  # scrapes committed by this run (0 when everything was there)


def plane_for(resources: Resources, audience: Audience) -> WorkerPlane:
    """The worker plane of `audience` wired as its port wires it (jobs, watches)."""
    return WorkerPlane.build(
        resources,
        audience,
        hooks=tracker_for(resources, audience),
        watch=watcher_for(resources, audience) if audience is Audience.PARCEL else None,
    )


async def seed(resources: Resources) -> list[Seeded]:
    """Seed parcels, then parties; each scrape at most once however often it runs."""
    return [
        await _seed(plane_for(resources, Audience.PARCEL), sample.parcel_scrapes(), "parcel_id"),
        await _seed(plane_for(resources, Audience.PARTY), sample.party_scrapes(), "party_id"),
    ]


async def _seed(plane: WorkerPlane, records: list[dict[str, Any]], id_field: str) -> Seeded:
    ids = {r[id_field] for r in records}
    async with plane.resources.sessionmaker() as session:
        stored = await stored_scrapes(session, plane.audience, ids)
    todo = [
        r for r in records if (r[id_field], datetime.fromisoformat(r["scraped_at"])) not in stored
    ]
    for start in range(0, len(todo), CHUNK):
        await _commit(plane, todo[start : start + CHUNK], id_field)
    return Seeded(plane.audience, len(ids), len(records), len(todo))


async def _commit(plane: WorkerPlane, chunk: Sequence[dict[str, Any]], id_field: str) -> None:
    tasks = [
        TaskIn(
            platform=r["platform"],
            key=f"demo:{r[id_field]}:{r['scraped_at']}",
            payload={"origin": "demo"},
            priority=1000,
        )
        for r in chunk
    ]
    enqueued = await plane.enqueue(tasks)
    pending = dict(zip(enqueued.task_ids, chunk, strict=True))
    platforms = sorted({t.platform for t in tasks})
    while pending:
        batch = await plane.queue.lease(HOLDER, platforms, len(pending), lease_s=SEED_LEASE_S)
        if not batch.tasks:
            raise CliError(
                f"{len(pending)} sample scrapes are still leased (an interrupted "
                f"`gateway demo`?): run it again in {SEED_LEASE_S:.0f} s"
            )
        items: list[dict[str, Any]] = []
        for task in batch.tasks:
            record = pending.pop(task.task_id, None)
            if record is not None:
                items.append(
                    {
                        "task_id": task.task_id,
                        "lease_id": task.lease_id,
                        "status": "succeeded",
                        "data": record,
                    }
                )
            else:
                items.append(
                    {
                        "task_id": task.task_id,
                        "lease_id": task.lease_id,
                        "status": "failed",
                        "error": {
                            "message": "leased by `gateway demo` while seeding; back in its queue",
                            "retryable": True,
                        },
                    }
                )
        outcomes = await plane.results.submit(HOLDER, items)
        refused = [o for o in outcomes if o.outcome == "rejected"]
        if refused:
            first = refused[0]
            raise CliError(
                f"the results path refused {len(refused)} sample scrapes "
                f"(first: {first.reason} {first.errors})"
            )
