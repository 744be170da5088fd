"""Who is calling: the identity every public-plane check is keyed on."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from gateway.core.settings.tiers import Tier


class PrincipalKind(enum.StrEnum):
    """How the caller authenticated."""

    USER = "user"
    API_KEY = "api_key"
    ANONYMOUS = "anonymous"


class Role(enum.StrEnum):
    """What a caller may administer."""

    USER = "user"
    OPERATOR = "operator"
    ADMIN = "admin"
    SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """An authenticated (or anonymous) caller with its tier.

    `limit_key` names the rate-limit bucket: a user, an API key (keys of one user are
    limited separately, so a leaked key cannot exhaust the owner's interactive budget),
    or a client IP for anonymous callers.
    """

    kind: PrincipalKind
    id: str
    tier: Tier
    role: Role = Role.USER
    user_uid: str | None = None
    email: str | None = None
    # An API key's own scopes (names, as stored); None: whatever the role allows.
    # What the caller holds is `gateway.public.permissions.scopes_of`.
    key_scopes: frozenset[str] | None = None
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def limit_key(self) -> str:
        """Stable bucket name for rate limits and quotas."""
        return f"{self.kind.value}:{self.id}"

    @property
    def is_admin(self) -> bool:
        """Whether the caller may use admin endpoints."""
        return self.role is Role.ADMIN


def parse_role(value: str | None, default: Role = Role.USER) -> Role:
    """A stored or claimed role, falling back to `default` for unknown values."""
    try:
        return Role(value) if value else default
    except ValueError:
        return default
