"""Tiers: what each class of caller may do (rate, burst, daily quota, page size).

Tiers are configuration, not data: they change with a deploy, not per request, so they
live in a file named by `TIERS_FILE` (TOML or JSON, `{"tiers": {"free": {...}}}`) and
fall back to the built-in defaults below. A user or key names its tier; a tier that is
no longer configured falls back to `DEFAULT_TIER` rather than failing the request.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

TIER_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


class Tier(BaseModel):
    """One tier's limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=TIER_NAME)
    rate_per_s: float = Field(gt=0, le=100_000)
    burst: int = Field(ge=1, le=1_000_000)
    daily_quota: int = Field(ge=0, description="requests per UTC day; 0 means unlimited")
    max_page_size: int = Field(ge=1, le=1000)
    # Client jobs (gateway/jobs/): what one caller may ask the workers to do. Credits are
    # reserved at submission (items x cost), charged per item that succeeds and released
    # for items that fail, are cancelled or expire. 0 means unlimited.
    credits_per_day: int = Field(default=0, ge=0)
    credits_per_month: int = Field(default=0, ge=0)
    credit_cost: dict[str, int] = Field(
        default_factory=lambda: {"parcel_refresh": 1, "party_refresh": 1}
    )
    max_job_items: int = Field(default=1000, ge=1, le=10_000_000)
    max_open_jobs: int = Field(default=10, ge=1, le=100_000)
    # Job creations per sliding hour, exact across replicas (Redis); 0 means unlimited.
    jobs_per_hour: int = Field(default=0, ge=0)
    # Webhooks (gateway/webhooks/): endpoints one caller may register, and deliveries
    # per second to one endpoint (beyond it deliveries wait their turn, none is lost).
    max_webhooks: int = Field(default=5, ge=0, le=10_000)
    webhook_events_per_s: float = Field(default=10.0, gt=0, le=100_000)
    # Parcel watches (gateway/watches/): watches one caller may hold, and parcel ids
    # summed over them (a parcel in two watches counts twice).
    max_watches: int = Field(default=10, ge=0, le=100_000)
    max_watched_parcels: int = Field(default=1_000, ge=0, le=10_000_000)

    @property
    def bucket_window_s(self) -> int:
        """Seconds an empty bucket takes to refill completely (the policy window)."""
        return max(1, round(self.burst / self.rate_per_s))


DEFAULT_TIERS: dict[str, Tier] = {
    t.name: t
    for t in (
        Tier(
            name="anonymous",
            rate_per_s=1,
            burst=10,
            daily_quota=500,
            max_page_size=10,
            credits_per_day=0,
            max_job_items=1,
            max_open_jobs=1,
            jobs_per_hour=1,
            max_watches=0,
            max_watched_parcels=0,
        ),
        Tier(
            name="free",
            rate_per_s=2,
            burst=20,
            daily_quota=2_000,
            max_page_size=25,
            credits_per_day=1_000,
            max_job_items=1_000,
            max_open_jobs=3,
            jobs_per_hour=5,
        ),
        Tier(
            name="pro",
            rate_per_s=20,
            burst=100,
            daily_quota=100_000,
            max_page_size=100,
            credits_per_day=50_000,
            credits_per_month=1_000_000,
            max_job_items=100_000,
            max_open_jobs=50,
            jobs_per_hour=200,
            max_watches=100,
            max_watched_parcels=50_000,
        ),
        Tier(
            name="enterprise",
            rate_per_s=200,
            burst=1_000,
            daily_quota=0,
            max_page_size=500,
            credits_per_day=0,
            max_job_items=1_000_000,
            max_open_jobs=1_000,
            jobs_per_hour=0,
            max_watches=10_000,
            max_watched_parcels=1_000_000,
        ),
    )
}


class TierConfigError(ValueError):
    """The tiers file is unreadable or invalid; the message names the file."""


class Tiers:
    """The configured tiers with a default for unknown names."""

    def __init__(self, tiers: dict[str, Tier], default: str) -> None:
        if default not in tiers:
            raise TierConfigError(f"DEFAULT_TIER {default!r} is not a configured tier")
        self._tiers = dict(tiers)
        self.default = tiers[default]

    def get(self, name: str | None) -> Tier:
        """The named tier, or the default tier when the name is unknown."""
        if name is None:
            return self.default
        return self._tiers.get(name, self.default)

    def __contains__(self, name: object) -> bool:
        return name in self._tiers

    def names(self) -> list[str]:
        """Configured tier names."""
        return sorted(self._tiers)


def load_tiers(path: Path | None, default: str) -> Tiers:
    """Read `TIERS_FILE` (TOML or JSON) or use the built-in defaults."""
    if path is None:
        return Tiers(DEFAULT_TIERS, default)
    try:
        raw = path.read_bytes()
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
    except (OSError, ValueError) as exc:
        raise TierConfigError(f"TIERS_FILE {path}: {exc}") from exc
    section = data.get("tiers") if isinstance(data, dict) else None
    if not isinstance(section, dict) or not section:
        raise TierConfigError(f"TIERS_FILE {path}: expected a non-empty [tiers] table")
    try:
        tiers = {name: Tier(name=name, **spec) for name, spec in section.items()}
    except (ValidationError, TypeError) as exc:
        raise TierConfigError(f"TIERS_FILE {path}: {exc}") from exc
    return Tiers(tiers, default)
