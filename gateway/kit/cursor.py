"""Opaque pagination cursors: a key (or a tuple of keys) in URL-safe base64 JSON.

Keyset pagination everywhere (properties search, history, jobs, job items): the cursor
carries the last row's sort key, never an offset, so a page is one index range scan and
rows inserted meanwhile neither repeat nor go missing. What comes back from a client is
checked before it reaches SQL: a NUL or lone surrogate (JSON can spell both) or an
integer outside bigint would fail the query itself, a 500 instead of a 422.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.kit.field_errors import invalid_field
from gateway.kit.pg_text import storable_text

Key = str | int


def encode_cursor(value: Key | tuple[Key, ...]) -> str:
    """An opaque pagination cursor."""
    key = list(value) if isinstance(value, tuple) else value
    raw = json.dumps({"k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _valid(value: object, kind: type[str] | type[int]) -> bool:
    return (
        isinstance(value, kind)
        and not isinstance(value, bool)
        and not (isinstance(value, str) and not storable_text(value))
        and not (isinstance(value, int) and not -(2**63) <= value < 2**63)
    )


def _raw_key(cursor: str) -> object:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return json.loads(raw)["k"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None


def decode_cursor(cursor: str, kind: type[str] | type[int]) -> str | int:
    """The key inside a cursor, or a 422 naming the `cursor` parameter."""
    value = _raw_key(cursor)
    if not _valid(value, kind):
        raise invalid_field("query", "cursor", msg="invalid cursor")
    assert isinstance(value, (str, int))
    return value


def decode_cursor_tuple(cursor: str, kinds: tuple[type[str] | type[int], ...]) -> tuple[Key, ...]:
    """The keys inside a composite cursor, each of its kind, or a 422."""
    value = _raw_key(cursor)
    if (
        not isinstance(value, list)
        or len(value) != len(kinds)
        or not all(_valid(v, k) for v, k in zip(value, kinds, strict=True))
    ):
        raise invalid_field("query", "cursor", msg="invalid cursor")
    return tuple(value)


def decode_time_id_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """A `(created_at, id)` keyset cursor (newest-first pages), or a 422 naming `cursor`."""
    if not cursor:
        return None
    at, last_id = decode_cursor_tuple(cursor, (str, str))
    try:
        return datetime.fromisoformat(str(at)), str(last_id)
    except ValueError:
        raise invalid_field("query", "cursor", msg="invalid cursor") from None


def time_id_cursor(rows: Sequence[Any], more: bool) -> str | None:
    """The cursor after the last of `rows` (each with `created_at` and `id`), if `more`."""
    return encode_cursor((rows[-1].created_at.isoformat(), rows[-1].id)) if more else None
