"""Typed result records (`ParcelResult`, `PartyResult`) and their input hygiene.

Everything a worker sends is validated here before it can reach PostgreSQL: strings may
not contain NUL (PostgreSQL text and JSONB reject it, which would surface as a 500),
numbers must fit their columns (`NUMERIC(14,2)`), timestamps must carry a zone, and the
free-form `extra` object is bounded in serialised size and depth.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

import pydantic_core
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

MAX_DEPTH = 8


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k)
            _check_json(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_json(v, depth + 1)


def _clean_json(value: Any) -> Any:
    _check_json(value)
    return value


def json_size(value: Any) -> int:
    """Size in bytes of `value` serialised as compact JSON."""
    return len(pydantic_core.to_json(value, fallback=str))


def bounded_json(max_bytes: int) -> AfterValidator:
    """A validator: JSON without NUL characters, at most `max_bytes` when serialised."""

    def check(value: Any) -> Any:
        _check_json(value)
        size = json_size(value)
        if size > max_bytes:
            raise ValueError(f"is {size} bytes serialised; the limit is {max_bytes}")
        return value

    return AfterValidator(check)


SafeStr = Annotated[str, AfterValidator(_no_nul)]
Text = Annotated[SafeStr, StringConstraints(max_length=2000)]
Ident = Annotated[SafeStr, StringConstraints(min_length=1, max_length=256)]
Url = Annotated[SafeStr, StringConstraints(max_length=2048, pattern=r"^https?://")]
Money = Annotated[Decimal, Field(max_digits=14, decimal_places=2, allow_inf_nan=False)]
# Dates PostgreSQL and Python agree on; year 1 or 9999 is a scraping bug, not a date.
PlausibleDate = Annotated[date, AfterValidator(lambda d: _plausible(d))]
# Size is bounded by the results service (RESULT_EXTRA_MAX_BYTES is a setting).
Extra = Annotated[dict[str, Any], AfterValidator(_clean_json)]


def _plausible(value: date) -> date:
    if not 1800 <= value.year <= 2200:
        raise ValueError("year must be between 1800 and 2200")
    return value


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ParcelResult(_Record):
    """A scraped parcel: the current row of `parcels` and one `parcel_history` entry."""

    parcel_id: Ident
    state: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    county: Annotated[SafeStr, StringConstraints(min_length=1, max_length=200)]
    platform: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    address: Text | None = None
    owner_name: Text | None = None
    assessed_value: Money | None = None
    tax_amount_due: Money | None = None
    lien_status: Annotated[SafeStr, StringConstraints(max_length=100)] | None = None
    auction_date: PlausibleDate | None = None
    source_url: Url | None = None
    scraped_at: AwareDatetime
    extra: Extra = Field(default_factory=dict)


class PartyAddress(_Record):
    """A postal address of a party."""

    line1: Text | None = None
    line2: Text | None = None
    city: Annotated[SafeStr, StringConstraints(max_length=200)] | None = None
    state: Annotated[SafeStr, StringConstraints(max_length=50)] | None = None
    postal_code: Annotated[SafeStr, StringConstraints(max_length=20)] | None = None
    country: Annotated[SafeStr, StringConstraints(max_length=2)] | None = None


class PartyDocument(_Record):
    """A recorded document naming a party (deed, lien, judgment...)."""

    document_id: Ident
    type: Annotated[SafeStr, StringConstraints(min_length=1, max_length=100)]
    recorded_date: PlausibleDate | None = None
    url: Url | None = None


class PartyResult(_Record):
    """A scraped party with its addresses, related parcels and documents."""

    party_id: Ident
    name: Annotated[SafeStr, StringConstraints(min_length=1, max_length=500)]
    kind: Literal["person", "organization"]
    platform: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    addresses: list[PartyAddress] = Field(default_factory=list, max_length=50)
    parcel_ids: list[Ident] = Field(default_factory=list, max_length=1000)
    documents: list[PartyDocument] = Field(default_factory=list, max_length=1000)
    source_url: Url | None = None
    scraped_at: AwareDatetime
    extra: Extra = Field(default_factory=dict)


ResultRecord = ParcelResult | PartyResult
