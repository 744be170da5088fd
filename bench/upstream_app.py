"""The local upstream of the public-plane benchmark: a stand-in parser service.

`GET /v1/properties/{id}` answers a realistic property document with
`Cache-Control: max-age=300`; ids starting with `slow-` take 200 ms (so concurrent
misses pile up for the single-flight check). `GET /_count` says how many property
requests were served, which is how the benchmark counts upstream calls.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_served = {"count": 0}


async def prop(request: Request) -> JSONResponse:
    """One parcel's current record."""
    _served["count"] += 1
    parcel_id = request.path_params["parcel_id"]
    if parcel_id.startswith("slow-"):
        await asyncio.sleep(0.2)
    body = {
        "parcel_id": parcel_id,
        "state": "FL",
        "county": "Miami-Dade",
        "platform": "bench",
        "address": "123 Main St, Miami, FL 33101",
        "owner_name": "Jane Q. Doe",
        "assessed_value": "250000.00",
        "tax_amount_due": "4321.09",
        "lien_status": "active",
        "auction_date": "2026-06-01",
        "source_url": "https://example.invalid/parcel",
        "scraped_at": "2026-11-01T00:00:00+00:00",
        "extra": {},
    }
    return JSONResponse(body, headers={"Cache-Control": "max-age=300"})


async def count(request: Request) -> JSONResponse:
    """How many property requests were served."""
    return JSONResponse({"count": _served["count"]})


async def health(request: Request) -> JSONResponse:
    """Readiness for the benchmark's start-up poll."""
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/v1/properties/{parcel_id}", prop),
        Route("/_count", count),
        Route("/health", health),
    ]
)
