"""The JSON Schemas (draft 2020-12) of webhook bodies, shipped as package data.

`webhook-event.schema.json` is the envelope (`{"type", "timestamp", "data"}`) with one
`if`/`then` branch per event type. It does not copy the data schemas it shares with other
consumers: a job event's data is `$ref`ed from the jobs' own schema
(`gateway/jobs/schemas/job-event.schema.json`, the document the live streams send too),
and a parcel change's from `parcel-change.schema.json`. All three carry `$id`s under one
base, so the relative `$ref`s resolve between them however they are loaded.

The gateway never validates its own deliveries at run time (the tests do, against real
deliveries); it only serves these files to receivers (`GET /v1/webhooks/schemas/{name}`).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

ENVELOPE = "webhook-event.schema.json"
PARCEL_CHANGE = "parcel-change.schema.json"
JOB_EVENT = "job-event.schema.json"
# Every file a receiver needs to resolve the envelope's `$ref`s, and the package holding it.
_FILES: dict[str, str] = {
    ENVELOPE: "gateway.webhooks",
    PARCEL_CHANGE: "gateway.webhooks",
    JOB_EVENT: "gateway.jobs",
}
SCHEMA_NAMES: tuple[str, ...] = tuple(_FILES)


@cache
def schema_bytes(name: str) -> bytes | None:
    """The file `name` as shipped (None: not one of ours), read once per process."""
    package = _FILES.get(name)
    if package is None:
        return None
    return (importlib_resources.files(package) / "schemas" / name).read_bytes()


def schema(name: str) -> dict[str, Any]:
    """One schema, parsed (a `KeyError` for an unknown name)."""
    raw = schema_bytes(name)
    if raw is None:
        raise KeyError(name)
    parsed: dict[str, Any] = json.loads(raw)
    return parsed


def all_schemas() -> dict[str, dict[str, Any]]:
    """Every schema by file name: the envelope and what it refers to."""
    return {name: schema(name) for name in SCHEMA_NAMES}
