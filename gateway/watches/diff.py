"""Which watched fields of a parcel a new result changes, as JSON values.

Values are compared in the form the API shows them, so a re-scrape that reads the same
facts changes nothing however the database and the validated result type them (a
`Decimal('1200.5')` from a worker and `1200.50` from `NUMERIC(14,2)` are both
"1200.50"; a date is its ISO form).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

_CENTS = Decimal("0.01")


def json_value(value: Any) -> str | None:
    """A field's value as the change shows it."""
    if value is None:
        return None
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return str(Decimal(str(value)).quantize(_CENTS))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def changed_fields(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], fields: Sequence[str]
) -> dict[str, dict[str, str | None]]:
    """`{field: {"old", "new"}}` for each of `fields` whose value differs.

    No previous row (the parcel's first result) counts every field that has a value as
    changed from null: a watch set up before the first scrape hears of the first data.
    """
    out: dict[str, dict[str, str | None]] = {}
    for name in fields:
        before = None if old is None else json_value(old.get(name))
        after = json_value(new.get(name))
        if before != after:
            out[name] = {"old": before, "new": after}
    return out
