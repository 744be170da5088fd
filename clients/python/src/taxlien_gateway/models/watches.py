"""Parcel watches (`/v1/watches`) and the `parcel.changed` records they produce."""

from __future__ import annotations

from datetime import datetime

from taxlien_gateway.models._base import Model, Page


class Watch(Model):
    """A watch of some parcels of one platform (`parcel_ids` sorted)."""

    id: str
    platform: str
    parcel_ids: list[str]
    fields: list[str]
    created_at: datetime


class FieldChange(Model):
    """One field before and after (amounts as two-decimal strings, dates `YYYY-MM-DD`)."""

    old: str | None = None
    new: str | None = None


class ParcelChange(Model):
    """A `parcel.changed` event's data: what changed in a watched parcel."""

    id: str
    watch_id: str
    platform: str
    parcel_id: str
    at: datetime
    scraped_at: datetime
    previous_scraped_at: datetime | None = None
    task_id: str
    changes: dict[str, FieldChange]


class WatchPage(Page[Watch]):
    """A page of watches, newest first."""


class ParcelChangePage(Page[ParcelChange]):
    """A page of a watch's changes, newest first."""
