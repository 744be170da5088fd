"""Validating a job's items, one by one, the same way for a JSON body and an upload.

Every bad item is reported with where it is (`["items", 7, "parcel_id"]` in a body,
`["line", 12, "parcel_id"]` in a file), up to `MAX_REPORTED` of them, without the
submitted value (an upload may hold anything). Items naming the same (platform, id)
twice are merged into one (one task, one credit); the estimate says how many were.

Validation stops at the first unique item past the tier's cap: an upload may hold a
million rows, and nothing past the cap can change the answer (a 422 naming the cap), so
neither the CPU nor the memory of those rows is spent.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from gateway.core.errors import InvalidInput
from gateway.jobs.models import Item, JobKind, ParcelItem, PartyItem

MAX_REPORTED = 50

_ADAPTERS: dict[JobKind, TypeAdapter[ParcelItem] | TypeAdapter[PartyItem]] = {
    JobKind.PARCEL_REFRESH: TypeAdapter(ParcelItem),
    JobKind.PARTY_REFRESH: TypeAdapter(PartyItem),
}

Locate = Callable[[int], list[str | int]]


def body_location(index: int) -> list[str | int]:
    """Where item `index` of a JSON body is."""
    return ["body", "items", index]


class ItemErrors:
    """Collects per-item errors up to `MAX_REPORTED`, counting the rest."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []
        self.count = 0

    def add(self, loc: list[str | int], msg: str, type_: str) -> None:
        """Record one problem at `loc`."""
        self.count += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append({"loc": loc, "msg": msg, "type": type_})

    def raise_if_any(self) -> None:
        """Raise the 422 if anything was recorded."""
        if not self.count:
            return
        more = self.count - len(self.errors)
        detail = f"{self.count} item(s) are invalid"
        if more:
            detail += f"; the first {len(self.errors)} are listed"
        raise InvalidInput(self.errors, detail)


def validate_items(
    kind: JobKind,
    raw_items: Iterable[tuple[int, Any]],
    known_platforms: Collection[str],
    *,
    max_items: int,
    locate: Locate = body_location,
    errors: ItemErrors | None = None,
    where: list[str | int] | None = None,
) -> tuple[list[Item], int]:
    """The valid, unique items of `raw_items` ((position, raw) pairs) and how many
    duplicates were merged; raises a 422 listing the bad ones, or naming the cap.

    `errors` may already hold (or, while `raw_items` is consumed, receive) problems its
    producer found, such as an upload line that is not JSON, so every problem is listed
    in one answer in position order; `where` locates the whole list (empty, too long)."""
    adapter = _ADAPTERS[kind]
    errors = ItemErrors() if errors is None else errors
    where = ["body", "items"] if where is None else where
    seen: set[Item] = set()
    items: list[Item] = []
    duplicates = 0
    for position, raw in raw_items:
        try:
            parsed = adapter.validate_python(raw)
        except ValidationError as exc:
            for e in exc.errors(include_input=False, include_url=False):
                errors.add([*locate(position), *(str(p) for p in e["loc"])], e["msg"], e["type"])
            continue
        if parsed.platform not in known_platforms:
            errors.add([*locate(position), "platform"], "unknown platform", "unknown_platform")
            continue
        key = parsed.parcel_id if isinstance(parsed, ParcelItem) else parsed.party_id
        item = Item(platform=parsed.platform, key=key)
        if item in seen:
            duplicates += 1
            continue
        seen.add(item)
        items.append(item)
        if len(items) > max_items:
            break
    errors.raise_if_any()
    if not items:
        raise InvalidInput(
            [
                {
                    "loc": where,
                    "msg": "a job needs at least one item",
                    "type": "too_short",
                }
            ],
            "The job has no items",
        )
    if len(items) > max_items:
        raise InvalidInput(
            [
                {
                    "loc": where,
                    "msg": f"your tier allows at most {max_items} items per job",
                    "type": "too_long",
                }
            ],
            f"Too many items for your tier (at most {max_items} per job)",
        )
    return items, duplicates
