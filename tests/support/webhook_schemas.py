"""A validator of webhook bodies against the shipped JSON Schemas, as a receiver builds it.

The envelope `$ref`s the job-event and parcel-change schemas by relative URI; the registry
holds all three under their `$id`s, so nothing is fetched. `date-time` is checked here
(jsonschema checks that format only with the optional rfc3339-validator, not installed):
an ISO 8601 date and time with an offset, what the gateway writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import jsonschema
from referencing import Registry, Resource

from gateway.webhooks.payload_schemas import ENVELOPE, all_schemas

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True  # formats constrain strings only (the `type` keyword does the rest)
    if "T" not in value.upper():
        raise ValueError(f"{value!r} has no time")
    if datetime.fromisoformat(value).tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return True


def registry(schemas: dict[str, dict[str, Any]] | None = None) -> Registry[Any]:
    """The schemas (default: as shipped) by `$id`."""
    found = all_schemas() if schemas is None else schemas
    return Registry().with_resources(
        (doc["$id"], Resource.from_contents(doc)) for doc in found.values()
    )


def webhook_validator(
    schemas: dict[str, dict[str, Any]] | None = None,
) -> jsonschema.Draft202012Validator:
    """A validator of webhook bodies (the envelope schema, formats asserted)."""
    found = all_schemas() if schemas is None else schemas
    for doc in found.values():
        jsonschema.Draft202012Validator.check_schema(doc)
    return jsonschema.Draft202012Validator(
        found[ENVELOPE], registry=registry(found), format_checker=FORMATS
    )
