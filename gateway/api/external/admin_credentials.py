"""`/v1/admin/api-keys` and `/v1/admin/worker-tokens`: every credential (admin role).

API keys of every user, listed and revoked through `ApiKeyService`; worker tokens
created, listed and revoked through `TokenStore`, as `gateway keys|tokens ...` do. No
answer carries a secret or its hash, except a new worker token, shown once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from gateway.api.deps import ResourcesDep
from gateway.api.external.public_deps import ActorDep, Caller, PlaneDep
from gateway.api.external.requires import requires
from gateway.kit.cursor import decode_time_id_cursor, time_id_cursor
from gateway.public.permissions import Scope
from gateway.public.repository.api_keys import ApiKeyRow
from gateway.work.plane import token_store
from gateway.work.repository.worker_tokens import TokenRow
from gateway.work.tokens import Role as TokenRole

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class AdminKeyOut(BaseModel):
    """An API key of any owner (never its secret)."""

    id: str
    name: str
    tier: str
    user_uid: str | None = Field(description="null: a service key")
    scopes: list[str] | None
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKeyRow) -> AdminKeyOut:
        """The response shape of a stored key."""
        return cls(
            id=row.id,
            name=row.name,
            tier=row.tier,
            user_uid=row.user_uid,
            scopes=row.scopes,
            created_at=row.created_at,
            rotated_at=row.rotated_at,
            revoked_at=row.revoked_at,
        )


class AdminKeyList(BaseModel):
    """A page of keys, newest first; `next_cursor` is null on the last page."""

    items: list[AdminKeyOut]
    next_cursor: str | None


@router.get("/api-keys", summary="API keys of every user (admin role)")
async def list_api_keys(
    admin: Annotated[Caller, requires(Scope.CREDENTIALS_ADMIN)],
    plane: PlaneDep,
    user: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    revoked: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> AdminKeyList:
    """Keys newest first, of one user (`user`) or all, live or revoked (`revoked`)."""
    rows = await plane.api_keys.page(
        user_uid=user, revoked=revoked, after=decode_time_id_cursor(cursor), limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return AdminKeyList(
        items=[AdminKeyOut.of(r) for r in rows], next_cursor=time_id_cursor(rows, more)
    )


@router.post("/api-keys/{key_id}/revoke", summary="Revoke any API key (admin role)")
async def revoke_api_key(
    key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")],
    admin: Annotated[Caller, requires(Scope.CREDENTIALS_ADMIN)],
    actor: ActorDep,
    plane: PlaneDep,
) -> AdminKeyOut:
    """Revoke the key; a revoked key is answered as it is (idempotent), 404 if unknown."""
    row = await plane.api_keys.revoke(key_id, owner=None, actor=actor, idempotent=True)
    return AdminKeyOut.of(row)


class WorkerTokenIn(BaseModel):
    """A worker token to create: the worker port it is for, a unique name, its role."""

    audience: Literal["parcel", "party"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w.:@-]*$")
    role: TokenRole = TokenRole.WORKER


class WorkerTokenOut(BaseModel):
    """A stored worker token (never the token)."""

    name: str
    audience: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: TokenRow) -> WorkerTokenOut:
        """The response shape of a stored token."""
        return cls(
            name=row.name,
            audience=row.audience,
            role=row.role,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


class WorkerTokenCreated(BaseModel):
    """A new worker token: `token` is shown this once."""

    name: str
    audience: str
    role: str
    token: str


class WorkerTokenList(BaseModel):
    """Worker tokens, newest first."""

    items: list[WorkerTokenOut]


class WorkerTokenRevoked(BaseModel):
    """The token named is revoked (now or before)."""

    name: str
    revoked: bool


@router.post(
    "/worker-tokens", status_code=201, summary="Create a worker token, shown once (admin role)"
)
async def create_worker_token(
    body: WorkerTokenIn,
    admin: Annotated[Caller, requires(Scope.CREDENTIALS_ADMIN)],
    actor: ActorDep,
    resources: ResourcesDep,
) -> WorkerTokenCreated:
    """Store a new token; 409 when a live token already has the name."""
    token = await token_store(resources).create(
        audience=body.audience, name=body.name, role=body.role, actor=actor
    )
    return WorkerTokenCreated(
        name=body.name, audience=body.audience, role=body.role.value, token=token
    )


@router.get("/worker-tokens", summary="Worker tokens (admin role)")
async def list_worker_tokens(
    admin: Annotated[Caller, requires(Scope.CREDENTIALS_ADMIN)],
    resources: ResourcesDep,
    revoked: Annotated[bool, Query(description="Include revoked tokens")] = False,
) -> WorkerTokenList:
    """Live tokens (and revoked ones with `revoked=true`), newest first."""
    rows = await token_store(resources).list(include_revoked=revoked)
    return WorkerTokenList(items=[WorkerTokenOut.of(r) for r in rows])


@router.post("/worker-tokens/{name}/revoke", summary="Revoke a worker token (admin role)")
async def revoke_worker_token(
    name: Annotated[str, Path(min_length=1, max_length=64)],
    admin: Annotated[Caller, requires(Scope.CREDENTIALS_ADMIN)],
    actor: ActorDep,
    resources: ResourcesDep,
) -> WorkerTokenRevoked:
    """Revoke the live token `name` on every replica; idempotent for a revoked one."""
    await token_store(resources).revoke(name, actor=actor, idempotent=True)
    return WorkerTokenRevoked(name=name, revoked=True)
