"""Where `/v1/properties` answers come from: the parser service, or the parcel tables.

With `PARSER_SERVICE_URL` set, requests are forwarded through the process's shared httpx
client with this plane's explicit connect/read timeouts. The upstream learns the request
id and who is calling (`X-Gateway-Principal`, `X-Gateway-Tier`) but never sees the
caller's credentials: the gateway is the only party that authenticates them.

Without it, the built-in origin serves the same API from the `parcels` and
`parcel_history` tables that the worker plane fills. Both return an `OriginResponse`
and raise `UpstreamFailure` for what the circuit breaker should count (connect errors,
timeouts, 5xx), so cache, limits, breaker and metrics treat them the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.kit.cursor import decode_cursor, encode_cursor
from gateway.kit.outage import is_database_down
from gateway.public.principal import Principal
from gateway.public.repository import parcels_read
from gateway.public.repository.parcels_read import SearchFilters

JSON = "application/json"


class UpstreamFailure(Exception):
    """A failure the circuit breaker counts: connect error, timeout, 5xx."""

    def __init__(self, status: str, *, connect: bool = False) -> None:
        super().__init__(status)
        self.status = status
        self.connect = connect


@dataclass(slots=True)
class OriginRequest:
    """One validated public request, as every origin needs it (read-only; not frozen
    only because it is built on every request and frozen init costs microseconds)."""

    route: str  # "property" | "history" | "search"
    path: str
    query: tuple[tuple[str, str], ...]  # canonical: validated parameters, sorted
    principal: Principal
    request_id: str
    parcel_id: str | None = None
    filters: SearchFilters | None = None
    cursor: str | None = None
    limit: int = 25


@dataclass(frozen=True)
class OriginResponse:
    """What an origin answered."""

    status: int
    body: bytes
    content_type: str = JSON
    cache_control: str | None = None
    etag: str | None = None


class Origin(Protocol):
    """An upstream that can answer an `OriginRequest`."""

    name: str

    async def fetch(self, request: OriginRequest) -> OriginResponse:
        """Answer the request or raise `UpstreamFailure`."""
        ...


class ParserServiceOrigin:
    """Forwards to the parser service through the shared httpx client."""

    name = "parser"

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, *, connect_s: float, read_s: float
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._timeout = httpx.Timeout(connect=connect_s, read=read_s, write=read_s, pool=connect_s)

    async def fetch(self, request: OriginRequest) -> OriginResponse:
        """GET the same path and canonical query from the parser service."""
        principal = request.principal
        headers = {
            "X-Request-ID": request.request_id,
            "X-Gateway-Principal": principal.limit_key,
            "X-Gateway-Tier": principal.tier.name,
            "Accept": JSON,
        }
        if principal.user_uid is not None:
            headers["X-Gateway-User"] = principal.user_uid
        try:
            response = await self._client.get(
                self._base + request.path,
                params=list(request.query),
                headers=headers,
                timeout=self._timeout,
            )
        except httpx.ConnectError as exc:
            raise UpstreamFailure("connect_error", connect=True) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamFailure("timeout") from exc
        except httpx.HTTPError as exc:
            raise UpstreamFailure("error") from exc
        if response.status_code >= 500:
            raise UpstreamFailure(str(response.status_code))
        return OriginResponse(
            status=response.status_code,
            body=response.content,
            content_type=response.headers.get("content-type", JSON),
            cache_control=response.headers.get("cache-control"),
            etag=response.headers.get("etag"),
        )


def _json(doc: Any, status: int = 200) -> OriginResponse:
    return OriginResponse(status, json.dumps(doc, separators=(",", ":")).encode())


def _not_found(request: OriginRequest) -> OriginResponse:
    doc = {
        "type": "https://gateway.taxlien.dev/problems/not-found",
        "title": "Not found",
        "status": 404,
        "detail": f"No parcel {request.parcel_id}",
        "instance": request.path,
        "request_id": request.request_id,
    }
    return OriginResponse(404, json.dumps(doc).encode(), "application/problem+json")


class DatabaseOrigin:
    """Serves the properties API from the parcel tables."""

    name = "builtin"

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def fetch(self, request: OriginRequest) -> OriginResponse:
        """Run the route's query; database outages count as upstream failures."""
        try:
            async with self._sessionmaker() as session:
                return await self._answer(session, request)
        except Exception as exc:
            if is_database_down(exc):
                raise UpstreamFailure("connect_error") from exc
            raise

    async def _answer(self, session: AsyncSession, request: OriginRequest) -> OriginResponse:
        assert request.parcel_id is not None or request.route == "search"
        limit = request.limit
        if request.route == "property":
            assert request.parcel_id is not None
            row = await parcels_read.get_parcel(session, request.parcel_id)
            return _not_found(request) if row is None else _json(row)
        if request.route == "history":
            assert request.parcel_id is not None
            after = int(decode_cursor(request.cursor, int)) if request.cursor else None
            rows = await parcels_read.history(
                session, request.parcel_id, after_id=after, limit=limit + 1
            )
            if (
                not rows
                and after is None
                and await parcels_read.get_parcel(session, request.parcel_id) is None
            ):
                return _not_found(request)
            more = len(rows) > limit
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].pop("id")) if more else None
            for row in rows:
                row.pop("id", None)
            return _json(
                {"parcel_id": request.parcel_id, "items": rows, "next_cursor": next_cursor}
            )
        filters = request.filters or SearchFilters()
        after_key = decode_cursor(request.cursor, str) if request.cursor else None
        rows = await parcels_read.search(
            session, filters, after=str(after_key) if after_key else None, limit=limit + 1
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["parcel_id"]) if more else None
        return _json({"items": rows, "next_cursor": next_cursor})
