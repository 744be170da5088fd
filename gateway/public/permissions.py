"""The permission model: roles, scopes, and what each route needs.

A route needs one `Permission` (declared once, on the route: `gateway/api/permissions.py`):

- `public`: no credential (ops probes, `/info`, the OpenAPI document);
- `caller`: any caller the authenticator accepts, anonymous tier included (`/v1/me`);
- `link`: the URL's own token is the credential (a job's download link);
- a `Scope` (`jobs:read`, `admin:write`, ...): a caller holding that scope;
- `worker` / `producer`: an `X-Worker-Token` of the port's audience (any role, or the
  producer role) on the worker ports.

What a caller holds: its role's scopes (`ROLE_SCOPES`); an API key holds the scopes
chosen when it was made, always cut down to what its owner's role allows *now*
(so a demoted owner's keys lose admin rights as soon as the key is next verified). A
key made without scopes follows its owner's role: the behaviour of keys made before
scopes existed. Anonymous callers hold `ANONYMOUS_SCOPES`.

Roles: `admin` everything; `operator` the operations (admin:read, admin:write: cache,
client jobs of every owner, routing, status) but not the security records and
credentials of others (the audit trail, `users:admin`: users' tiers, roles and
disabling, `credentials:admin`: every user's keys and the worker tokens stay CLI or
admin-only); `user` their own data and keys; `service` (keys without an owner)
their own data but no key management.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.core.errors import Forbidden
from gateway.kit.field_errors import invalid_field
from gateway.public.principal import Principal, PrincipalKind, Role


class Scope(enum.StrEnum):
    """What an API key (or a role) may do; one per family of routes and direction."""

    PROPERTIES_READ = "properties:read"
    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    WATCHES_READ = "watches:read"
    WATCHES_WRITE = "watches:write"
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    ADMIN_READ = "admin:read"
    ADMIN_WRITE = "admin:write"
    AUDIT_READ = "audit:read"
    USERS_ADMIN = "users:admin"
    CREDENTIALS_ADMIN = "credentials:admin"


class Access(enum.StrEnum):
    """The kinds of requirement a route can declare (see the module docstring)."""

    PUBLIC = "public"
    CALLER = "caller"
    LINK = "link"
    SCOPE = "scope"
    WORKER = "worker"
    PRODUCER = "producer"


@dataclass(frozen=True)
class Permission:
    """What one route needs: an `Access` kind, and its scope when the kind is `scope`."""

    access: Access
    scope: Scope | None = None

    @property
    def label(self) -> str:
        """How the README's permission matrix names it: the scope, else the kind."""
        return self.scope.value if self.scope is not None else self.access.value

    @classmethod
    def parse(cls, label: str) -> Permission:
        """The permission a matrix label names (ValueError for an unknown one)."""
        try:
            return cls(Access.SCOPE, Scope(label))
        except ValueError:
            access = Access(label)
        if access is Access.SCOPE:
            raise ValueError("name the scope itself")
        return cls(access)


PUBLIC = Permission(Access.PUBLIC)
CALLER = Permission(Access.CALLER)
LINK = Permission(Access.LINK)
WORKER = Permission(Access.WORKER)
PRODUCER = Permission(Access.PRODUCER)


def needs(scope: Scope) -> Permission:
    """The permission of holding `scope`."""
    return Permission(Access.SCOPE, scope)


_OWN_DATA = frozenset(
    {
        Scope.PROPERTIES_READ,
        Scope.JOBS_READ,
        Scope.JOBS_WRITE,
        Scope.WEBHOOKS_READ,
        Scope.WEBHOOKS_WRITE,
        Scope.WATCHES_READ,
        Scope.WATCHES_WRITE,
    }
)
_KEYS = frozenset({Scope.KEYS_READ, Scope.KEYS_WRITE})
_OPERATIONS = frozenset({Scope.ADMIN_READ, Scope.ADMIN_WRITE})

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.ADMIN: frozenset(Scope),
    Role.OPERATOR: _OWN_DATA | _KEYS | _OPERATIONS,
    Role.USER: _OWN_DATA | _KEYS,
    Role.SERVICE: _OWN_DATA,
}
# Anonymous callers (ANONYMOUS_TIER) own nothing: they can only read public data.
ANONYMOUS_SCOPES: frozenset[Scope] = frozenset({Scope.PROPERTIES_READ})


class MissingScope(Forbidden):
    """The caller's role or key does not hold the scope the route needs."""

    slug = "missing-scope"
    title = "Missing scope"


def scopes_of(principal: Principal) -> frozenset[Scope]:
    """Every scope the caller holds now (role's, cut down to the key's)."""
    if principal.kind is PrincipalKind.ANONYMOUS:
        return ANONYMOUS_SCOPES
    held = ROLE_SCOPES[principal.role]
    if principal.key_scopes is not None:
        held = held & frozenset(Scope(s) for s in principal.key_scopes if s in _KNOWN)
    return held


_KNOWN = frozenset(s.value for s in Scope)


def allows(principal: Principal, scope: Scope) -> bool:
    """Whether the caller holds `scope` (two set lookups: it runs on every request)."""
    if principal.kind is PrincipalKind.ANONYMOUS:
        return scope in ANONYMOUS_SCOPES
    if scope not in ROLE_SCOPES[principal.role]:
        return False
    return principal.key_scopes is None or scope.value in principal.key_scopes


def check(principal: Principal, scope: Scope) -> None:
    """`MissingScope` (403) unless the caller holds `scope`."""
    if not allows(principal, scope):
        if principal.kind is PrincipalKind.ANONYMOUS:
            why = "anonymous callers have no account: sign in or use an API key"
        elif principal.kind is PrincipalKind.API_KEY and scope in ROLE_SCOPES[principal.role]:
            why = "this API key was not given it"
        else:
            why = f"the {principal.role.value} role does not include it"
        raise MissingScope(
            f"This endpoint needs the {scope.value} scope, and {why}",
            extra={"needed": scope.value},
        )


def parse_scopes(values: Iterable[str], *where: str) -> frozenset[Scope]:
    """Scope names as given at key creation (422 naming an unknown one)."""
    out = set()
    for value in values:
        try:
            out.add(Scope(value))
        except ValueError:
            raise invalid_field(
                *where, msg=f"unknown scope {value!r}; one of {', '.join(s.value for s in Scope)}"
            ) from None
    return frozenset(out)


def grantable(
    requested: frozenset[Scope] | None, *, owner_role: Role, creator: frozenset[Scope] | None
) -> frozenset[str] | None:
    """The scopes a new key is stored with, or 403 when they exceed what may be granted.

    A key can never exceed its owner's role, nor the credential that creates it (a key
    with `keys:write` but only `jobs:read` cannot mint a key with `jobs:write`).
    `creator` is None when the creator is not limited beyond the owner's role (a user's
    token, the CLI, a key without scopes of its own). Nothing requested: follow the
    owner's role (stored as NULL), or, for a limited creator, its own scopes.
    """
    ceiling = ROLE_SCOPES[owner_role] if creator is None else ROLE_SCOPES[owner_role] & creator
    if requested is None:
        return None if creator is None else frozenset(s.value for s in ceiling)
    beyond = requested - ceiling
    if beyond:
        names = ", ".join(sorted(s.value for s in beyond))
        raise MissingScope(
            f"A key cannot hold more than its owner and its creator may: {names}",
            extra={"needed": sorted(s.value for s in beyond)},
        )
    return frozenset(s.value for s in requested)
