"""Parcels: the current record, its history and search results (`/v1/properties`)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from taxlien_gateway.models._base import Model, Page


class Property(Model):
    """A parcel's current record (amounts are exact decimals; the API sends strings)."""

    parcel_id: str
    state: str | None = None
    county: str | None = None
    platform: str | None = None
    address: str | None = None
    owner_name: str | None = None
    assessed_value: Decimal | None = None
    tax_amount_due: Decimal | None = None
    lien_status: str | None = None
    auction_date: date | None = None
    source_url: str | None = None
    scraped_at: datetime | None = None
    extra: dict[str, Any] | None = None
    updated_at: datetime | None = None


class HistoryEntry(Property):
    """One accepted result of a parcel (`accepted_at`: when the gateway stored it)."""

    accepted_at: datetime | None = None


class PropertyHistoryPage(Page[HistoryEntry]):
    """A page of one parcel's history, oldest first."""

    parcel_id: str


class PropertyPage(Page[Property]):
    """A page of search results, ordered by parcel id."""
