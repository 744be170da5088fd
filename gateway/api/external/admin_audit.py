"""`GET /v1/admin/audit`: the audit trail, newest first, filtered and paged (admin role)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field

from gateway.api.external.public_deps import Caller, PlaneDep
from gateway.api.external.requires import requires
from gateway.audit.service import AuditLog
from gateway.kit.cursor import decode_cursor, encode_cursor
from gateway.kit.field_errors import invalid_field
from gateway.public.permissions import Scope

router = APIRouter(prefix="/v1/admin", tags=["admin"])


class AuditEntryOut(BaseModel):
    """One audit row: who, what, when, the summaries, and its links in the chain."""

    seq: int = Field(description="Position in the chain: 1, 2, 3, ... without gaps")
    at: datetime
    actor: str = Field(description="`user:<uid>`, `api_key:<id>` or `cli:<os user>`")
    actor_role: str
    actor_user: str | None = Field(description="The user behind an API key")
    ip: str | None
    request_id: str | None
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    prev_hash: str
    hash: str


class AuditList(BaseModel):
    """A page of the trail, newest first; `next_cursor` is null on the last page."""

    items: list[AuditEntryOut]
    next_cursor: str | None


def _before_seq(cursor: str | None) -> int | None:
    if not cursor:
        return None
    seq = decode_cursor(cursor, int)
    if not isinstance(seq, int) or seq < 1:
        raise invalid_field("query", "cursor", msg="invalid cursor")
    return seq


@router.get("/audit", summary="The audit trail, newest first (admin role)")
async def audit_trail(
    admin: Annotated[Caller, requires(Scope.AUDIT_READ)],
    plane: PlaneDep,
    actor: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="A principal, or a user (with keys)"),
    ] = None,
    action: Annotated[
        str | None,
        Query(
            pattern=r"^[a-z_]{1,40}(\.[a-z_]{1,40})?$",
            description="An action (`api_key.revoke`) or a family (`api_key`)",
        ),
    ] = None,
    target: Annotated[str | None, Query(min_length=1, max_length=300)] = None,
    since: Annotated[AwareDatetime | None, Query(description="Rows at or after")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> AuditList:
    """Rows matching every filter given."""
    page = await AuditLog(plane.resources.sessionmaker).page(
        actor=actor,
        action=action,
        target=target,
        since=since,
        before_seq=_before_seq(cursor),
        limit=limit,
    )
    return AuditList(
        items=[AuditEntryOut(**row.__dict__) for row in page.items],
        next_cursor=None if page.next_before is None else encode_cursor(page.next_before),
    )
