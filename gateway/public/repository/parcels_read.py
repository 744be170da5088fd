"""Read-only SQL over `parcels` / `parcel_history` for the public plane's built-in origin.

The worker plane owns writes to these tables; this module only reads them, and never
exposes the internal task/lease columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_PUBLIC_COLUMNS = (
    "parcel_id, state, county, platform, address, owner_name, assessed_value, "
    "tax_amount_due, lien_status, auction_date, source_url, scraped_at, extra"
)


@dataclass(frozen=True)
class SearchFilters:
    """Validated search filters; None means "any"."""

    state: str | None = None
    county: str | None = None
    lien_status: str | None = None
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    q: str | None = None


def _jsonable(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row._mapping.items():
        if isinstance(value, Decimal):
            out[key] = str(value)
        elif isinstance(value, datetime | date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


async def get_parcel(session: AsyncSession, parcel_id: str) -> dict[str, Any] | None:
    """The current row of one parcel."""
    result = await session.execute(
        text(f"SELECT {_PUBLIC_COLUMNS}, updated_at FROM parcels WHERE parcel_id = :id"),  # noqa: S608 - constant columns
        {"id": parcel_id},
    )
    row = result.one_or_none()
    return None if row is None else _jsonable(row)


async def history(
    session: AsyncSession, parcel_id: str, *, after_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """Accepted results of one parcel, oldest first, keyset-paginated on the row id."""
    result = await session.execute(
        text(
            f"SELECT id, {_PUBLIC_COLUMNS}, accepted_at FROM parcel_history "  # noqa: S608 - constant columns
            "WHERE parcel_id = :id AND (CAST(:after AS bigint) IS NULL OR id > :after) "
            "ORDER BY id LIMIT :limit"
        ),
        {"id": parcel_id, "after": after_id, "limit": limit},
    )
    return [_jsonable(row) for row in result.all()]


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search(
    session: AsyncSession, filters: SearchFilters, *, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """Parcels matching every given filter, ordered by parcel id (keyset pagination)."""
    clauses = []
    params: dict[str, Any] = {"limit": limit}
    if filters.state is not None:
        clauses.append("state = :state")
        params["state"] = filters.state
    if filters.county is not None:
        clauses.append("lower(county) = lower(:county)")
        params["county"] = filters.county
    if filters.lien_status is not None:
        clauses.append("lien_status = :lien_status")
        params["lien_status"] = filters.lien_status
    if filters.min_amount is not None:
        clauses.append("tax_amount_due >= :min_amount")
        params["min_amount"] = filters.min_amount
    if filters.max_amount is not None:
        clauses.append("tax_amount_due <= :max_amount")
        params["max_amount"] = filters.max_amount
    if filters.q is not None:
        clauses.append("(address ILIKE :q OR owner_name ILIKE :q)")
        params["q"] = _like(filters.q)
    if after is not None:
        clauses.append("parcel_id > :after")
        params["after"] = after
    where = " AND ".join(clauses) or "TRUE"
    result = await session.execute(
        text(
            f"SELECT {_PUBLIC_COLUMNS}, updated_at FROM parcels WHERE {where} "  # noqa: S608 - clauses are constants, values bound
            "ORDER BY parcel_id LIMIT :limit"
        ),
        params,
    )
    return [_jsonable(row) for row in result.all()]
