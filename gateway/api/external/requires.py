"""The public port's permission dependencies: one per route, in its signature.

- `requires(Scope.X)` gives the admitted `Caller` after checking the scope (403
  `missing-scope` otherwise); `requires(CALLER)` any authenticated caller.
- `authorized(Scope.X)` gives the checked `Principal` without admitting it, for routes
  that admit themselves (the properties routes read the cache in the same round trip).

The scope is checked before the limiter is asked, so a refused request takes no budget.
Whichever of this and `get_caller` (under `OwnerDep`, `ActorDep`) runs first admits the
request; the other finds the admitted caller in the request state.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fastapi import Depends, Request

from gateway.api.external.public_deps import (
    Caller,
    PrincipalDep,
    admit,
    pre_admitted,
    public_plane,
    remember_admitted,
)
from gateway.public.permissions import CALLER, Access, Permission, Scope, check, needs
from gateway.public.principal import Principal


class _Checked:
    """Authenticate and check; the permission `gateway.api.permissions` reads."""

    # Whether the dependency also admits the request (asks the limiter: a 429 then).
    admits: ClassVar[bool] = False

    def __init__(self, permission: Permission) -> None:
        if permission.access not in {Access.SCOPE, Access.CALLER}:
            raise ValueError(f"not a caller permission: {permission.label}")
        self.permission = permission

    def _check(self, principal: Principal) -> None:
        if self.permission.scope is not None:
            check(principal, self.permission.scope)


class _Authorized(_Checked):
    async def __call__(self, principal: PrincipalDep) -> Principal:
        self._check(principal)
        return principal


class _Required(_Checked):
    admits = True

    async def __call__(self, request: Request, principal: PrincipalDep) -> Caller:
        self._check(principal)
        caller = pre_admitted(request.scope)
        if caller is None:
            plane = public_plane(request)
            caller = Caller(principal, await admit(request.scope, plane, principal))
            remember_admitted(request.scope, caller)
        return caller


def _permission(need: Scope | Permission) -> Permission:
    return needs(need) if isinstance(need, Scope) else need


def requires(need: Scope | Permission = CALLER) -> Any:
    """`caller: Annotated[Caller, requires(Scope.JOBS_READ)]`: checked and admitted."""
    return Depends(_Required(_permission(need)))


def authorized(need: Scope) -> Any:
    """`principal: Annotated[Principal, authorized(Scope.X)]`: checked, not admitted."""
    return Depends(_Authorized(_permission(need)))
