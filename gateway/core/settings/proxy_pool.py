"""Proxy pool settings, composed into `gateway.core.settings.Settings` (flat env names)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class ProxyPoolSettings(BaseSettings):
    """Timings of the outbound proxy pool shared by parcel and party workers."""

    proxy_lease_ttl_s: float = Field(default=300.0, gt=0, le=86_400)
    proxy_ban_base_s: float = Field(default=60.0, gt=0)
    proxy_ban_cap_s: float = Field(default=3_600.0, gt=0)
    # Retry-After when every proxy of a platform is leased or cooling (capped by the
    # earliest cool-down end), and when the inventory is empty.
    proxy_retry_after_s: int = Field(default=5, ge=1, le=3_600)
    proxy_empty_retry_after_s: int = Field(default=30, ge=1, le=3_600)
    # How long the Redis copy of the inventory is trusted before it is re-read from
    # PostgreSQL, and how often each internal app refreshes gauges and reclaims leases.
    proxy_sync_interval_s: float = Field(default=30.0, gt=0)
    proxy_maintenance_interval_s: float = Field(default=5.0, gt=0)
    # Error tiers a proxy can sink to on one platform; each tier ranks below the last.
    proxy_max_error_tier: int = Field(default=10, ge=1, le=50)
