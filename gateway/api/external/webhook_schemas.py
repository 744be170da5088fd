"""`GET /v1/webhooks/schemas/{name}`: the JSON Schemas of webhook bodies, as shipped with
this gateway (`gateway/webhooks/payload_schemas.py`), so a receiver validates against the
version it is talking to. Public documents: any caller the limiter admits may read them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from gateway.api.external.requires import requires
from gateway.core.errors import NotFound
from gateway.public.permissions import Scope
from gateway.webhooks.payload_schemas import SCHEMA_NAMES, schema_bytes

router = APIRouter(prefix="/v1", tags=["webhooks"])

SchemaName = Annotated[
    str,
    Path(max_length=64, description=f"One of {', '.join(SCHEMA_NAMES)}"),
]
# Static for a gateway version; an hour keeps a new version's files from lagging long.
_CACHE = {"Cache-Control": "public, max-age=3600"}


@router.get(
    "/webhooks/schemas/{name}",
    summary="A JSON Schema of webhook bodies (start at webhook-event.schema.json)",
    response_class=Response,
    responses={200: {"content": {"application/schema+json": {}}}},
    # Authenticated (or anonymous) and admitted by the limiter like every public route.
    dependencies=[requires(Scope.WEBHOOKS_READ)],
)
async def webhook_schema(name: SchemaName) -> Response:
    """The envelope schema or one it refers to (`$ref`s are relative to its `$id`)."""
    body = schema_bytes(name)
    if body is None:
        raise NotFound(f"No webhook schema named {name[:64]!r}; try {SCHEMA_NAMES[0]}")
    return Response(body, media_type="application/schema+json", headers=_CACHE)
