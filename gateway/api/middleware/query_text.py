"""Refuse query parameters PostgreSQL cannot store, once, in front of every route.

A NUL in a query parameter (`?q=a%00b`) passes every route's validation (it is a valid
`str`) and fails only when PostgreSQL refuses the statement: a 500 for any caller.
Rather than a check per parameter of every route, present and future, this layer looks
at the raw query string of every request on every port and answers a 422 problem
naming the offending parameters (never their values) before any route, credential check
or limiter runs. See `gateway.kit.pg_text` for what PostgreSQL cannot store and why a
lone surrogate cannot arrive this way (decoded cursors are checked where they are
decoded, `gateway.kit.cursor.decode_cursor`).

The common case costs one substring search of the raw bytes: a NUL can only arrive as
`%00` (or a raw 0x00, which HTTP servers refuse anyway).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.problems import send_problem
from gateway.core.errors import InvalidInput
from gateway.kit.pg_text import NOT_STORABLE_MSG, storable_text

_ERROR_TYPE = "string_not_storable"


def _suspect(query_string: bytes) -> bool:
    return b"%00" in query_string or b"\x00" in query_string


def refused_parameters(query_string: bytes) -> list[dict[str, Any]]:
    """Field errors for the parameters whose name or value PostgreSQL cannot store."""
    errors: list[dict[str, Any]] = []
    # Decoded as Starlette decodes query strings, so a parameter is named as routes see it.
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if storable_text(name) and storable_text(value):
            continue
        loc = ["query", name] if storable_text(name) else ["query"]
        errors.append({"loc": loc, "msg": NOT_STORABLE_MSG, "type": _ERROR_TYPE})
    return errors


class QueryTextGuard:
    """ASGI layer answering 422 for query strings that carry a NUL; see the docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function returning the next layer's coroutine: no frame of its own for
        # the requests it passes on.
        if scope["type"] == "http" and _suspect(scope["query_string"]):
            errors = refused_parameters(scope["query_string"])
            if errors:
                return self._refuse(scope, send, errors)
        return self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, errors: list[dict[str, Any]]) -> None:
        state = scope.get("state") or {}
        await send_problem(
            send,
            InvalidInput(errors),
            instance=scope["path"],
            request_id=state.get("request_id"),
        )
