"""The baseline for the health benchmark: bare Starlette answering what the gateway answers.

Same body, same status, same server (uvicorn, one worker, same loop and HTTP parser);
no middleware, no FastAPI, no settings. The gateway's health endpoint divided by this one
is the cost of the gateway's own request path (routing, middleware, metrics, logging).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def health(request: Request) -> JSONResponse:
    """Liveness: the same small JSON body the gateway returns."""
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/health", health, methods=["GET"])])
