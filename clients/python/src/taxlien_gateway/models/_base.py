"""The base of every answer model: unknown fields are kept, not refused.

A client must keep working when the server adds a field, so answers allow extras (they
are reachable as attributes and through `model_extra`); request bodies are built from
plain arguments and never validated here, so the server's 422 stays the one verdict.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Model(BaseModel):
    """An answer of the gateway (extra fields kept)."""

    model_config = ConfigDict(extra="allow")


class Page(Model, Generic[T]):
    """One page of a cursor-paginated list; `next_cursor` is null on the last page."""

    items: list[T]
    next_cursor: str | None = None
