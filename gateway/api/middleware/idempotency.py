"""`Idempotency-Key` on every POST under `/v1/` of the public port, as pure ASGI.

A layer rather than a route dependency, so that every POST route (API keys, jobs, and
whatever comes next) gets the guarantee without opting in, and a replay answers without
running the route's dependencies at all. Requests that are not POSTs under `/v1/` or
carry no `Idempotency-Key` pass straight on: the check costs one scan of the headers.

For a request with a key, in order:

1. parse the key (`gateway.public.idempotency.parse_key`; 400 problem when malformed);
2. authenticate the caller (the key is scoped per principal). A failure is not answered
   here: it is left in the scope (`AUTHENTICATED_STATE`), the request passes on, and the
   route's `get_principal` raises it, so the answer and the failed-attempt count are what
   they would be without the header. A success is left there too: no second lookup;
3. read the whole body (the fingerprint covers it), bounded by the request body limit
   (`MAX_BODY_BYTES`, or `JOB_UPLOAD_MAX_BYTES` on upload paths) and spooled to a
   temporary file past `_SPOOL_MEMORY_BYTES`, so a 20 MB upload does not sit in memory;
4. ask Redis (`IdempotencyService.begin`): a replay, a 409 or a 422 is answered here and
   takes one unit of the caller's rate limit like any request; `new` runs the app with
   the body replayed from the spool. Redis down is a 503 with `Retry-After`: nothing runs
   without the guarantee;
5. the answer is relayed as it is produced, except its last body message, which waits
   until the answer is stored (or the key released): a client that has seen the whole
   answer and repeats the request gets the replay, never a 409.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable
from typing import IO, Any

from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.external.public_deps import AUTHENTICATED_STATE, admit, client_ip_of
from gateway.api.problems import send_problem
from gateway.core.errors import GatewayError, PayloadTooLarge
from gateway.public.authenticate import Credentials
from gateway.public.idempotency import (
    REPLAYED_HEADER,
    Claim,
    Hasher,
    IdempotencyKeyInUse,
    IdempotencyKeyMismatch,
    Outcome,
    StoredResponse,
    multipart_fingerprint,
    parse_key,
    storable,
    storable_headers,
)
from gateway.public.plane import PublicPlane
from gateway.public.principal import Principal

_HEADER = b"idempotency-key"
_PREFIX = "/v1/"
# Bodies up to this size stay in memory while the request runs; larger ones go to disk.
_SPOOL_MEMORY_BYTES = 1_048_576
_CHUNK_BYTES = 65_536
UPLOAD_PATHS = frozenset({"/v1/jobs/upload"})


def _forwarded_for(scope: Scope) -> dict[str, str]:
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            return {"x-forwarded-for": value.decode("latin-1")}
    return {}


def _content_type(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value)
    return b""


class _Capture:
    """A copy of the app's answer for the store, dropped past the size limit."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_large = False


class IdempotencyLayer:
    """ASGI layer of the public app; see the module docstring."""

    def __init__(self, app: ASGIApp, *, plane: PublicPlane) -> None:
        self.app = app
        self.plane = plane
        self.service = plane.idempotency
        settings = plane.resources.settings
        self.max_body_bytes = settings.max_body_bytes
        self.upload_max_bytes = settings.job_upload_max_bytes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function returning a coroutine: requests passed on get no extra frame.
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith(_PREFIX)
        ):
            return self.app(scope, receive, send)
        values = [bytes(v) for n, v in scope["headers"] if n == _HEADER]
        if not values:
            return self.app(scope, receive, send)
        return self._serve(scope, receive, send, values)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, values: list[bytes]) -> None:
        spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY_BYTES)  # noqa: SIM115 - closed below
        try:
            await self._guarded(scope, receive, send, values, spool)
        finally:
            spool.close()

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, values: list[bytes], spool: IO[bytes]
    ) -> None:
        state: dict[str, Any] = scope.setdefault("state", {})
        try:
            key = parse_key(values)
            principal = await self._authenticate(scope)
        except GatewayError as error:
            await self._problem(scope, send, error, state)
            return
        if principal is None:  # the route answers the failure, as without the header
            await self.app(scope, receive, send)
            return
        try:
            hasher = multipart_fingerprint(
                scope["method"], scope["path"], scope["query_string"], _content_type(scope)
            )
            size = await self._read_body(scope, receive, spool, hasher)
            if size is None:
                return  # the client left before its body arrived: nothing ran
            claim = await self.service.begin(
                principal.limit_key, scope["method"], scope["path"], key, hasher.hexdigest()
            )
            if claim.outcome is not Outcome.NEW:
                # A refused or replayed request takes budget like any other.
                await admit(scope, self.plane, principal)
        except GatewayError as error:
            await self._problem(scope, send, error, state)
            return
        if claim.outcome is Outcome.IN_FLIGHT:
            await self._problem(
                scope,
                send,
                IdempotencyKeyInUse(
                    "A request with this Idempotency-Key is still being processed; retry later",
                    headers={"Retry-After": "1"},
                ),
                state,
            )
        elif claim.outcome is Outcome.MISMATCH:
            await self._problem(scope, send, IdempotencyKeyMismatch(), state)
        elif claim.outcome is Outcome.REPLAY:
            assert claim.response is not None
            await self._replay(scope, send, claim.response)
        else:
            await self._run(scope, receive, send, spool, size, claim)

    async def _authenticate(self, scope: Scope) -> Principal | None:
        """The caller, or None with the failure left for the route to raise."""
        state: dict[str, Any] = scope["state"]
        plane = self.plane
        try:
            ip = client_ip_of(_forwarded_for(scope), scope.get("client"), plane)
            principal = await plane.authenticator.authenticate(
                Credentials.from_raw(scope["headers"]), ip
            )
        except GatewayError as error:
            state[AUTHENTICATED_STATE] = error
            return None
        state[AUTHENTICATED_STATE] = principal
        return principal

    async def _read_body(
        self, scope: Scope, receive: Receive, spool: IO[bytes], hasher: Hasher
    ) -> int | None:
        """Spool and hash the whole body: its size, None if the client disconnected first."""
        limit = self.upload_max_bytes if scope["path"] in UPLOAD_PATHS else self.max_body_bytes
        size = 0
        while True:
            try:
                message = await receive()
            except HTTPException as exc:
                # The request context's own limit on chunked bodies, meant for FastAPI's
                # body parsing; answered here as the same problem.
                if exc.status_code == 413:
                    raise PayloadTooLarge(str(exc.detail)) from exc
                raise
            if message["type"] == "http.disconnect":
                return None
            body: bytes = message.get("body", b"")
            size += len(body)
            if size > limit:
                raise PayloadTooLarge(f"Request body exceeds {limit} bytes")
            hasher.update(body)
            spool.write(body)
            if not message.get("more_body", False):
                spool.seek(0)
                return size

    async def _run(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        spool: IO[bytes],
        size: int,
        claim: Claim,
    ) -> None:
        """Run the app on the spooled body; store its answer or release the key."""
        service = self.service
        capture = _Capture(service.max_body_bytes)
        finished = False
        replayed = False

        async def receive_spooled() -> Message:
            nonlocal replayed
            if replayed:
                # The body is spent; what follows is the connection's news (disconnect).
                return await receive()
            chunk = spool.read(_CHUNK_BYTES)
            more = spool.tell() < size
            replayed = not more
            return {"type": "http.request", "body": chunk, "more_body": more}

        async def send_captured(message: Message) -> None:
            nonlocal finished
            if message["type"] == "http.response.start":
                capture.status = message["status"]
                capture.headers = list(message.get("headers", ()))
            elif message["type"] == "http.response.body" and not finished:
                body: bytes = message.get("body", b"")
                capture.size += len(body)
                if capture.size > capture.max_bytes:
                    capture.too_large = True
                    capture.chunks.clear()
                elif not capture.too_large:
                    capture.chunks.append(body)
                if not message.get("more_body", False):
                    # Decided before the client sees the end of the answer (module docstring).
                    finished = True
                    await self._finish(claim, capture)
            await send(message)

        try:
            await self.app(scope, receive_spooled, send_captured)
        finally:
            if not finished:
                # An exception, a cancellation or an answer never completed: the client's
                # retry must run the request again.
                await service.release(claim, "incomplete")

    async def _finish(self, claim: Claim, capture: _Capture) -> None:
        service = self.service
        if not storable(capture.status):
            await service.release(claim, f"status_{capture.status}")
        elif capture.too_large:
            await service.release(claim, "too_large")
        else:
            response = StoredResponse(
                capture.status, storable_headers(capture.headers), b"".join(capture.chunks)
            )
            await service.store(claim, response)

    async def _replay(self, scope: Scope, send: Send, stored: StoredResponse) -> None:
        self._name_route(scope)
        headers = [
            *stored.headers,
            (b"content-length", str(len(stored.body)).encode()),
            REPLAYED_HEADER,
        ]
        await send({"type": "http.response.start", "status": stored.status, "headers": headers})
        await send({"type": "http.response.body", "body": stored.body})

    async def _problem(
        self, scope: Scope, send: Send, error: GatewayError, state: dict[str, Any]
    ) -> None:
        self._name_route(scope)
        request_id = state.get("request_id")
        await send_problem(
            send,
            error,
            instance=scope["path"],
            request_id=str(request_id) if request_id is not None else None,
        )

    def _name_route(self, scope: Scope) -> None:
        """Report the matched route, so logs and metrics name its template."""
        app = scope.get("app")
        for route in getattr(getattr(app, "router", None), "routes", ()):
            match, _child = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                return
