"""Job routes (downloads): filled in by issue 12."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["jobs"])
