"""SQL of downloads: the job a link names, revocation, and the export queries.

The export is one statement per download, read by PostgreSQL straight into the wire
format (CSV by `COPY ... TO STDOUT`, NDJSON as one `json_build_object(...)::text` per
row), so Python only forwards bytes. Items come by index (the primary key's order); a
succeeded item is joined to its entity's *current* row (`parcels` or `parties`, the
task key is the entity id), any other item has empty entity columns.

Entity columns are read from the worker plane's table objects, so a column added to
`parcels` or `parties` shows up in downloads without touching this file; `platform` is
the item's own, and the worker plane's bookkeeping (`task_id`, `lease_id`) is not
exported.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from gateway.jobs.repository.tables import jobs
from gateway.work.repository.parcel_results import parcels
from gateway.work.repository.party_results import parties

_NOT_EXPORTED = frozenset({"platform", "task_id", "lease_id"})


@dataclass(frozen=True)
class Entity:
    """What one audience's items are joined to."""

    table: str
    id_column: str
    columns: tuple[str, ...]


def _entity(table: sa.Table, id_column: str) -> Entity:
    columns = tuple(
        c.name for c in table.columns if c.name != id_column and c.name not in _NOT_EXPORTED
    )
    return Entity(table.name, id_column, columns)


ENTITIES: dict[str, Entity] = {
    "parcel": _entity(parcels, "parcel_id"),
    "party": _entity(parties, "party_id"),
}


def columns(audience: str) -> tuple[str, ...]:
    """The exported columns of an audience's jobs, in file order."""
    entity = ENTITIES[audience]
    return ("index", "platform", entity.id_column, "item_state", "last_error", *entity.columns)


def _select(audience: str, values: str) -> str:
    entity = ENTITIES[audience]
    # Every name here comes from `ENTITIES` (table metadata), never from a request; the
    # one value, the job id, is a bind parameter ($1).
    return (
        f"SELECT {values} FROM job_items i"  # noqa: S608
        f" LEFT JOIN {entity.table} e"
        f" ON i.state = 'succeeded' AND e.{entity.id_column} = i.key"
        " WHERE i.job_id = $1 ORDER BY i.idx"
    )


def _sources(audience: str) -> list[tuple[str, str]]:
    entity = ENTITIES[audience]
    fixed = [
        ("index", "i.idx"),
        ("platform", "i.platform"),
        (entity.id_column, "i.key"),
        ("item_state", "i.state"),
        ("last_error", "i.last_error"),
    ]
    return fixed + [(c, f'e."{c}"') for c in entity.columns]


def csv_query(audience: str) -> str:
    """The rows of a job (`$1`) as plain columns, for `COPY (...) TO STDOUT`."""
    return _select(audience, ", ".join(f'{src} AS "{name}"' for name, src in _sources(audience)))


def ndjson_query(audience: str) -> str:
    """The rows of a job (`$1`), each one JSON object as text (keys in file order).

    `row_to_json` over the plain columns: measured faster than `json_build_object`
    with the same keys (PostgreSQL's JSON rendering is most of a download's cost).
    """
    return f'SELECT row_to_json(r)::text FROM ({csv_query(audience)}) r ORDER BY r."index"'  # noqa: S608


async def job_for_token(conn: AsyncConnection, job_id: str) -> sa.Row[str, str, str, int] | None:
    """What a link is checked against: the job's owner, audience, state and generation."""
    result = await conn.execute(
        sa.select(jobs.c.owner, jobs.c.audience, jobs.c.state, jobs.c.download_gen).where(
            jobs.c.id == job_id
        )
    )
    return result.first()


async def download_generation(session: AsyncSession, job_id: str, owner: str) -> int | None:
    """The job's current link generation, None unless `owner` owns it (and it is visible)."""
    row = await session.execute(
        sa.select(jobs.c.download_gen).where(
            jobs.c.id == job_id, jobs.c.owner == owner, jobs.c.state != "submitting"
        )
    )
    return row.scalar_one_or_none()


async def bump_generation(session: AsyncSession, job_id: str, owner: str) -> bool:
    """Revoke every link issued so far for the owner's job; False when there is no such job."""
    row = await session.execute(
        sa.update(jobs)
        .where(jobs.c.id == job_id, jobs.c.owner == owner, jobs.c.state != "submitting")
        .values(download_gen=jobs.c.download_gen + 1)
        .returning(jobs.c.id)
    )
    return row.first() is not None
