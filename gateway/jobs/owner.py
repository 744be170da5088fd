"""Who a job belongs to, as the jobs capability sees a caller (no public-plane import)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.settings.tiers import Tier


@dataclass(frozen=True)
class Owner:
    """A job owner: the principal's limit key (`user:<uid>`, `api_key:<id>`) and tier.

    Keys of one user own their jobs separately, like their rate limits: a partner's key
    sees the jobs it created, not those of the owner's other keys.
    """

    id: str
    tier: Tier
    is_admin: bool = False
