"""`X-Worker-Token` authentication for the worker ports, as reusable dependencies.

`WorkerDep` gives the authenticated `WorkerPrincipal` (any role) and `ProducerDep`
additionally requires the `producer` role (403 otherwise). Missing, unknown, revoked or
other-audience tokens are 401 problem responses with a `reason` code.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from gateway.api.internal.plane import WorkerPlaneDep
from gateway.api.permissions import declares
from gateway.core.errors import Forbidden
from gateway.public.permissions import PRODUCER, WORKER
from gateway.work.tokens import WorkerPrincipal


@declares(WORKER)
async def authenticate_worker(
    plane: WorkerPlaneDep,
    x_worker_token: Annotated[str | None, Header(include_in_schema=True)] = None,
) -> WorkerPrincipal:
    """The principal of the request's `X-Worker-Token`."""
    return await plane.tokens.verify(x_worker_token)


WorkerDep = Annotated[WorkerPrincipal, Depends(authenticate_worker)]


@declares(PRODUCER)
async def require_producer(principal: WorkerDep) -> WorkerPrincipal:
    """The principal, if its token may enqueue."""
    if not principal.is_producer:
        raise Forbidden("this token may not enqueue tasks (role worker; producer required)")
    return principal


ProducerDep = Annotated[WorkerPrincipal, Depends(require_producer)]
