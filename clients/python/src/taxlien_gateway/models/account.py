"""The caller (`GET /v1/me`) and their API keys (`/v1/api-keys`)."""

from __future__ import annotations

from datetime import datetime

from taxlien_gateway.models._base import Model


class Tier(Model):
    """A tier's request limits."""

    name: str
    rate_per_s: float
    burst: int
    daily_quota: int
    max_page_size: int


class Usage(Model):
    """Today's (UTC) use of the daily quota (`remaining` is null when unlimited)."""

    today: int
    daily_quota: int
    remaining: int | None


class PeriodCredits(Model):
    """Job credits of one UTC period (`limit`/`remaining` null when unlimited)."""

    charged: int
    reserved: int
    limit: int | None
    remaining: int | None
    resets_at: datetime


class Credits(Model):
    """Job credits today and this month (`month` null without a monthly cap)."""

    day: PeriodCredits
    month: PeriodCredits | None = None


class Me(Model):
    """Who the caller is: kind (`api_key`, `user`, `anonymous`), role, tier, usage."""

    kind: str
    id: str
    user_uid: str | None = None
    email: str | None = None
    role: str
    tier: Tier
    usage: Usage
    credits: Credits | None = None


class ApiKey(Model):
    """An API key, without its secret."""

    id: str
    name: str
    tier: str
    user_uid: str | None = None
    scopes: list[str] | None = None  # null: whatever its owner's role allows
    created_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None


class IssuedApiKey(ApiKey):
    """A new or rotated key with its secret (`key`), shown only in this answer."""

    key: str
