"""Job routes (admin_jobs): filled in by issue 12."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["jobs"])
