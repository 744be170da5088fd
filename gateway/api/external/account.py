"""`/v1/me` and `/v1/api-keys`: the caller, their limits, and their API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from gateway.api.external.jobs_deps import JobsPlaneDep, owner_of
from gateway.api.external.public_deps import ActorDep, Caller, PlaneDep
from gateway.api.external.requires import requires
from gateway.core.errors import Forbidden
from gateway.jobs.budget import CreditUsage, PeriodUsage
from gateway.public.api_keys import IssuedKey
from gateway.public.permissions import CALLER, Scope, parse_scopes, scopes_of
from gateway.public.principal import PrincipalKind
from gateway.public.repository.api_keys import ApiKeyRow

router = APIRouter(prefix="/v1", tags=["account"])

KeyId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]
_NO_STORE = {"Cache-Control": "no-store"}


class TierOut(BaseModel):
    """A tier's limits."""

    name: str
    rate_per_s: float
    burst: int
    daily_quota: int
    max_page_size: int


class UsageOut(BaseModel):
    """Today's (UTC) usage of the daily quota."""

    today: int
    daily_quota: int
    remaining: int | None


class PeriodCreditsOut(BaseModel):
    """Job credits of one UTC period: used (charged + reserved) against the limit."""

    charged: int = Field(description="Credits of items that succeeded")
    reserved: int = Field(description="Credits held for items still pending")
    limit: int | None = Field(description="Null when the tier has no limit for this period")
    remaining: int | None = Field(description="limit - charged - reserved; null when unlimited")
    resets_at: datetime = Field(description="When the period ends (UTC midnight, 1st of month)")

    @classmethod
    def of(cls, usage: PeriodUsage) -> PeriodCreditsOut:
        """The API shape of one period's usage."""
        return cls(
            charged=usage.charged,
            reserved=usage.reserved,
            limit=usage.limit,
            remaining=usage.remaining,
            resets_at=usage.resets_at,
        )


class CreditsOut(BaseModel):
    """Job credits today and this month (`month` is null when the tier has no monthly cap)."""

    day: PeriodCreditsOut
    month: PeriodCreditsOut | None

    @classmethod
    def of(cls, usage: CreditUsage) -> CreditsOut:
        """The API shape of an owner's credit usage."""
        return cls(
            day=PeriodCreditsOut.of(usage.day),
            month=None if usage.month is None else PeriodCreditsOut.of(usage.month),
        )


class MeOut(BaseModel):
    """Who the caller is, their tier and usage."""

    kind: str
    id: str
    user_uid: str | None
    email: str | None
    role: str
    tier: TierOut
    usage: UsageOut
    credits: CreditsOut | None = Field(description="Job credits; null for anonymous callers")


class KeyOut(BaseModel):
    """An API key without its secret."""

    id: str
    name: str
    tier: str
    user_uid: str | None
    scopes: list[str] | None = Field(
        description="The key's scopes; null: whatever its owner's role allows"
    )
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None


class IssuedKeyOut(KeyOut):
    """A key with its secret, shown only in this response."""

    key: str


class KeyList(BaseModel):
    """The caller's keys, newest first."""

    items: list[KeyOut]


class CreateKeyIn(BaseModel):
    """A new key's name and (admins only: any) tier."""

    name: str = Field(min_length=1, max_length=64)
    tier: str | None = Field(default=None, max_length=32)
    scopes: list[Annotated[str, Field(max_length=32)]] | None = Field(
        default=None,
        max_length=32,
        description="What the key may do (e.g. properties:read, jobs:write), within what "
        "its owner may; omitted: follow the owner's role (a key making a key: its own)",
    )


def _key_out(row: ApiKeyRow) -> KeyOut:
    return KeyOut(
        id=row.id,
        name=row.name,
        tier=row.tier,
        user_uid=row.user_uid,
        scopes=row.scopes,
        created_at=row.created_at,
        rotated_at=row.rotated_at,
        revoked_at=row.revoked_at,
    )


def _issued(issued: IssuedKey) -> IssuedKeyOut:
    return IssuedKeyOut(**_key_out(issued.row).model_dump(), key=issued.secret)


@router.get("/me", summary="The caller, their tier, limits, today's usage and job credits")
async def me(caller: Annotated[Caller, requires(CALLER)], jobs: JobsPlaneDep) -> MeOut:
    """Describe the caller."""
    p = caller.principal
    credits = None
    if p.kind is not PrincipalKind.ANONYMOUS:  # anonymous callers own no jobs
        credits = CreditsOut.of(await jobs.budget.usage(owner_of(caller)))
    used = caller.decision.quota_used
    quota = p.tier.daily_quota
    return MeOut(
        kind=p.kind.value,
        id=p.id,
        user_uid=p.user_uid,
        email=p.email,
        role=p.role.value,
        tier=TierOut(**p.tier.model_dump()),
        usage=UsageOut(
            today=used, daily_quota=quota, remaining=max(0, quota - used) if quota else None
        ),
        credits=credits,
    )


@router.post("/api-keys", status_code=201, summary="Create an API key (the secret is shown once)")
async def create_key(
    body: CreateKeyIn,
    caller: Annotated[Caller, requires(Scope.KEYS_WRITE)],
    actor: ActorDep,
    plane: PlaneDep,
    response: Response,
) -> IssuedKeyOut:
    """Create a key owned by the caller's user."""
    owner = plane.api_keys.require_owner(caller.principal)
    tier = body.tier or caller.principal.tier.name
    if tier != caller.principal.tier.name and not caller.principal.is_admin:
        raise Forbidden("Only admins may create keys of another tier than their own")
    response.headers.update(_NO_STORE)
    p = caller.principal
    issued = await plane.api_keys.create(
        name=body.name,
        tier=tier,
        user_uid=owner,
        actor=actor,
        scopes=None if body.scopes is None else parse_scopes(body.scopes, "body", "scopes"),
        # A key with scopes of its own limits the keys it makes; a signed-in user, or a
        # key that follows its owner's role, is limited by that role alone.
        creator=scopes_of(p) if p.kind is PrincipalKind.API_KEY and p.key_scopes else None,
    )
    return _issued(issued)


@router.get("/api-keys", summary="List the caller's API keys")
async def list_keys(
    caller: Annotated[Caller, requires(Scope.KEYS_READ)], plane: PlaneDep, response: Response
) -> KeyList:
    """Keys of the caller's user, without secrets."""
    owner = plane.api_keys.require_owner(caller.principal)
    response.headers.update(_NO_STORE)
    return KeyList(items=[_key_out(r) for r in await plane.api_keys.list_for(owner)])


@router.post(
    "/api-keys/{key_id}/rotate", summary="Replace a key's secret (the old one stops working)"
)
async def rotate_key(
    key_id: KeyId,
    caller: Annotated[Caller, requires(Scope.KEYS_WRITE)],
    actor: ActorDep,
    plane: PlaneDep,
    response: Response,
) -> IssuedKeyOut:
    """Rotate one of the caller's keys."""
    owner = plane.api_keys.require_owner(caller.principal)
    response.headers.update(_NO_STORE)
    return _issued(await plane.api_keys.rotate(key_id, owner=owner, actor=actor))


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke a key")
async def revoke_key(
    key_id: KeyId,
    caller: Annotated[Caller, requires(Scope.KEYS_WRITE)],
    actor: ActorDep,
    plane: PlaneDep,
) -> Response:
    """Revoke one of the caller's keys."""
    owner = plane.api_keys.require_owner(caller.principal)
    await plane.api_keys.revoke(key_id, owner=owner, actor=actor)
    return Response(status_code=204)
