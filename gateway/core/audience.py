"""The three audiences the gateway serves, one port each."""

from __future__ import annotations

import enum


class Audience(enum.StrEnum):
    """Who a port serves; also the `audience` label on every metric and log line."""

    PUBLIC = "public"
    PARCEL = "parcel"
    PARTY = "party"
