"""One logical API call, described once and sent by either client.

A `Call` is what both clients share: the method, path, query and body, the model of the
answer, and, for a POST, the `Idempotency-Key` chosen when the call was made, so every
retry of the call repeats the same key (and the gateway replays the first answer rather
than acting twice). Sending, retrying and sleeping are the clients' (sync or async).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from taxlien_gateway.errors import GatewayError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Params = Mapping[str, str | int | float | bool | None]


def new_idempotency_key() -> str:
    """A fresh key as a Structured Field string (`"<uuid4>"`), the form the draft asks."""
    return f'"{uuid.uuid4()}"'


@dataclass(frozen=True)
class Call(Generic[T_co]):
    """A request and how to read its answer (`model` None: no body, e.g. a 204)."""

    method: str
    path: str
    model: type[T_co] | None
    params: Params = field(default_factory=dict)
    json: Any = None
    idempotency_key: str | None = None

    def with_params(self, **params: str | int | float | bool | None) -> Call[T_co]:
        """The same call with some query parameters replaced (a page's cursor)."""
        return replace(self, params={**self.params, **params})

    def query(self) -> dict[str, str]:
        """The query string's parameters (None dropped, booleans as true/false)."""
        out: dict[str, str] = {}
        for name, value in self.params.items():
            if value is None:
                continue
            out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return out

    def headers(self) -> dict[str, str]:
        """Headers of this call (its idempotency key)."""
        return {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}


def call(
    method: str,
    path: str,
    model: type[T] | None,
    *,
    params: Params | None = None,
    json: Any = None,
    idempotency_key: str | None = None,
) -> Call[T]:
    """A call; a POST gets a fresh idempotency key unless one is given."""
    if method == "POST" and idempotency_key is None:
        idempotency_key = new_idempotency_key()
    elif idempotency_key is not None and not idempotency_key.startswith('"'):
        idempotency_key = f'"{idempotency_key}"'
    return Call(method, path, model, dict(params or {}), json, idempotency_key)


def decode(the_call: Call[T], response: httpx.Response) -> T:
    """The answer's model, or the `GatewayError` it stands for."""
    if response.status_code >= 400:
        raise GatewayError.from_response(response)
    if the_call.model is None:
        return None  # type: ignore[return-value]  # a Call[None]: the answer has no body
    model: Any = the_call.model
    if isinstance(model, type) and issubclass(model, BaseModel):
        parsed: Any = model.model_validate_json(response.content)
        return parsed  # type: ignore[no-any-return]  # an instance of the Call's model, T
    raw: Any = response.json()  # a Call[dict]: the JSON as it came
    return raw  # type: ignore[no-any-return]  # the Call's T is the raw JSON's type
