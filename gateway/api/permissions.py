"""Where every route's `Permission` is declared, and the registry that reads it.

A route declares what it needs once, as a dependency in its signature (or its router's
`dependencies`): `requires(Scope.JOBS_READ)` and friends on the public port
(`gateway/api/external/requires.py`), `WorkerDep` / `ProducerDep` on the worker ports,
`declared(PUBLIC)` where nothing is checked. Each of those dependencies carries its
`permission`; `permission_of(route)` walks the route's dependency tree and finds it.
Enforcement and declaration are the same object, so a route cannot say one thing and do
another, and `tests/api/test_permission_matrix.py` checks every route of every port
against the matrix in the README (and fails on a route that declares nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from fastapi import Depends
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute

from gateway.public.permissions import PUBLIC, Permission

F = TypeVar("F", bound=Callable[..., Any])

# Not API routes, so declared here: `/health` is answered in front of the routers
# (gateway/api/middleware/request_context.py); FastAPI adds the documentation routes
# (when `*_DOCS_ENABLED`).
UNROUTED: dict[str, Permission] = {
    "/health": PUBLIC,
    "/openapi.json": PUBLIC,
    "/openapi.yaml": PUBLIC,
    "/docs": PUBLIC,
    "/docs/oauth2-redirect": PUBLIC,
}


def declares(permission: Permission) -> Callable[[F], F]:
    """Mark a dependency function as the one that enforces `permission`."""

    def mark(call: F) -> F:
        call.permission = permission  # type: ignore[attr-defined]  # read by permission_of
        return call

    return mark


class Declared:
    """A dependency that checks nothing but names the route's permission (`public`,
    `link`, or a route that enforces its scope itself, like the streams)."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self) -> None:
        """Nothing to check here."""


def declared(permission: Permission) -> Any:
    """`Depends` on a `Declared` marker: `_: Annotated[None, declared(PUBLIC)]`."""
    return Depends(Declared(permission))


def _declared_in(dependant: Dependant) -> Iterator[Permission]:
    for dep in dependant.dependencies:
        permission = getattr(dep.call, "permission", None)
        if isinstance(permission, Permission):
            yield permission  # what it depends on is its own business (auth, admission)
        else:
            yield from _declared_in(dep)


class UndeclaredPermission(LookupError):
    """A route declares no permission, or several different ones."""


def permission_of(route: BaseRoute) -> Permission:
    """The one permission `route` declares (`UndeclaredPermission` otherwise)."""
    if not isinstance(route, APIRoute | APIWebSocketRoute):
        path = getattr(route, "path", None)
        if isinstance(path, str) and path in UNROUTED:
            return UNROUTED[path]
        raise UndeclaredPermission(f"{route!r} declares no permission")
    found = set(_declared_in(route.dependant))
    if len(found) != 1:
        what = "no permission" if not found else f"several: {sorted(p.label for p in found)}"
        raise UndeclaredPermission(f"{route.path} declares {what}")
    return found.pop()


def routes_of(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route of an app's `routes`, inside the wrappers FastAPI puts around included
    routers (the gateway includes them without a prefix or dependencies of their own)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from routes_of(inner.routes)
        else:
            yield route
