"""Field-level validation errors in the one shape every 422 carries.

Pydantic's errors and the checks a service makes itself (an unknown tier, a bad cursor)
reach clients as the same list: `{"loc": [...], "msg": ..., "type": ...}`, without the
submitted input (it may be a secret). Build them here, never by hand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.core.errors import InvalidInput


def invalid_field(*loc: str, msg: str, type: str = "value_error") -> InvalidInput:
    """A 422 naming one field: `raise invalid_field("query", "cursor", msg="invalid cursor")`."""
    return InvalidInput([{"loc": list(loc), "msg": msg, "type": type}])


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Reduce pydantic errors to location, message and type (no submitted input)."""
    return [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in errors
    ]
