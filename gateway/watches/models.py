"""What the watch routes read and answer, and the `parcel.changed` event's data."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

# The fields a watch can name (the parcel's facts a tax-lien investor acts on). Omitted
# `fields` means all of them.
WATCHABLE_FIELDS: tuple[str, ...] = (
    "owner_name",
    "address",
    "assessed_value",
    "tax_amount_due",
    "lien_status",
    "auction_date",
)
WatchField = Literal[
    "owner_name", "address", "assessed_value", "tax_amount_due", "lien_status", "auction_date"
]
WATCH_ID_PATTERN = r"^wat_[0-9a-f]{24}$"
CHANGE_ID_PATTERN = r"^pc_[0-9]{1,18}$"
PLATFORM_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# Parcel ids one request may name (a bigger portfolio is several watches, within the
# tier's `max_watched_parcels`).
MAX_PARCELS_PER_WATCH = 1000
PARCEL_CHANGED = "parcel.changed"

ParcelId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00]+$")]


def new_watch_id() -> str:
    """A fresh watch id."""
    return f"wat_{secrets.token_hex(12)}"


def change_event_id(change_id: int) -> str:
    """The event id of a recorded change (`pc_<n>`): its webhook-id basis and log cursor."""
    return f"pc_{change_id}"


class WatchIn(BaseModel):
    """`POST /v1/watches`: watch these parcels of one platform (repeated ids count once)."""

    model_config = ConfigDict(extra="forbid")

    platform: Annotated[str, Field(pattern=PLATFORM_PATTERN)]
    parcel_ids: Annotated[list[ParcelId], Field(min_length=1, max_length=MAX_PARCELS_PER_WATCH)]
    fields: Annotated[list[WatchField] | None, Field(min_length=1)] = None

    @field_validator("parcel_ids")
    @classmethod
    def _unique_ids(cls, ids: list[str]) -> list[str]:
        return list(dict.fromkeys(ids))

    @field_validator("fields")
    @classmethod
    def _unique_fields(cls, fields: list[str] | None) -> list[str] | None:
        # In the canonical order, so two watches of the same fields read the same.
        return None if fields is None else [f for f in WATCHABLE_FIELDS if f in fields]


class WatchOut(BaseModel):
    """A watch."""

    id: str
    platform: str
    parcel_ids: list[str]
    fields: list[str]
    created_at: datetime


class WatchList(BaseModel):
    """A page of watches, newest first."""

    items: list[WatchOut]
    next_cursor: str | None


class FieldChange(BaseModel):
    """One field's value before and after (JSON values: amounts as strings with two
    decimals, dates as `YYYY-MM-DD`; null when absent)."""

    old: str | None
    new: str | None


class ParcelChange(BaseModel):
    """The data of a `parcel.changed` event (also an entry of a watch's changes log)."""

    id: str
    watch_id: str
    platform: str
    parcel_id: str
    at: datetime
    scraped_at: datetime
    previous_scraped_at: datetime | None
    task_id: str
    changes: dict[str, FieldChange]


class ParcelChangeList(BaseModel):
    """A page of a watch's changes, newest first."""

    items: list[ParcelChange]
    next_cursor: str | None
