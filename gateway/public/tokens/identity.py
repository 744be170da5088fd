"""What a verified token says about its holder, whatever issued it.

User ids are namespaced by issuer (`<namespace>:<sub>`) so that two issuers handing out
the same `sub` never share a `users` row. Firebase uids stay bare: they were stored that
way before other issuers existed, and Firebase issues no `sub` another issuer could
claim (Firebase issuers never reach the other verifiers, see `chain.py`).

Role and tier come from claim paths the operator configured per issuer (an IdP's
claims are only as trustworthy as the operator says); without a path, or when the token
lacks the claim, the `users` row decides (see `gateway/public/users.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.public.principal import Role, parse_role

# When a role claim is a list (Keycloak's `realm_access.roles`), the most capable
# gateway role in it applies; other entries (the IdP's own roles) are ignored.
_ROLE_ORDER = (Role.ADMIN, Role.OPERATOR, Role.SERVICE, Role.USER)


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified token's holder: user id, email, claimed tier and role (if any)."""

    uid: str
    email: str | None
    tier: str | None
    role: Role | None
    claims: dict[str, Any] = field(compare=False, hash=False)
    # Unix time the token stops being valid (the verifier's own leeway already applied).
    expires_at: float = 0.0


def claim_at(claims: Mapping[str, Any], path: str | None) -> Any:
    """The value at a dotted path (`realm_access.roles`), or None."""
    if path is None:
        return None
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def role_of(value: Any) -> Role | None:
    """A gateway role from a claim: a role name, or a list holding one or more."""
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    present = {n for n in names if isinstance(n, str)}
    for role in _ROLE_ORDER:
        if role.value in present:
            return role
    return None


def tier_of(value: Any) -> str | None:
    """A tier name from a claim (a string, or the first string of a list)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return next((v for v in value if isinstance(v, str)), None)
    return None


def email_of(claims: Mapping[str, Any]) -> str | None:
    """The `email` claim when it is a string of sane length."""
    email = claims.get("email")
    return email if isinstance(email, str) and 0 < len(email) <= 320 else None


def firebase_identity(claims: dict[str, Any]) -> Identity:
    """A Firebase token's holder: custom claims `tier` and `role` (set by trusted backends)."""
    role = claims.get("role")
    # As before other issuers existed: an unknown role string means `user`.
    return Identity(
        uid=str(claims["uid"]),
        email=email_of(claims),
        tier=tier_of(claims.get("tier")) if isinstance(claims.get("tier"), str) else None,
        role=parse_role(role) if isinstance(role, str) else None,
        claims=claims,
        expires_at=float(claims.get("exp", 0)),
    )


def issuer_identity(
    claims: dict[str, Any],
    *,
    namespace: str,
    role_claim: str | None,
    tier_claim: str | None,
    expires_at: float,
) -> Identity:
    """An OIDC or HS256 token's holder, `sub` namespaced by its issuer."""
    return Identity(
        uid=f"{namespace}:{claims['sub']}",
        email=email_of(claims),
        tier=tier_of(claim_at(claims, tier_claim)),
        role=role_of(claim_at(claims, role_claim)),
        claims=claims,
        expires_at=expires_at,
    )
