"""Signed, expiring download links for a job's results, streamed from PostgreSQL.

A link (`download_tokens.py`) is the credential: it works without an auth header, names
the job, its owner, the format and the job's link generation, and is checked against
the job row when opened, so revoking (bumping `jobs.download_gen`) or a change of owner
ends every earlier link at once without storing tokens.

Streaming keeps memory constant whatever the job's size, and the Python work per row
near zero: PostgreSQL renders the file itself.

- CSV: `COPY (SELECT ...) TO STDOUT WITH (FORMAT csv, HEADER)` on the asyncpg connection
  under SQLAlchemy. asyncpg hands each buffer it reads to an `output` coroutine, which
  puts it on a bounded queue; when the client reads slowly the queue fills, `output`
  waits, asyncpg stops reading the socket and PostgreSQL blocks on its send: back
  pressure all the way to the server, at most `_QUEUE_CHUNKS` buffers held here.
- NDJSON: a server-side cursor over `json_build_object(...)::text`, fetched
  `DOWNLOAD_FETCH_ROWS` rows a time and joined into one chunk per fetch.

Each download holds one pooled connection for its whole stream (in a read-only
transaction whose `statement_timeout` is `DOWNLOAD_MAX_S`), so at most
`DOWNLOAD_MAX_CONCURRENT` run per process and the next one is a 503 with `Retry-After`.
The first chunk is read before `open` returns: a database that is down, a revoked link
or a bad statement is a problem response, not a 200 cut short. A download that ends
early (the client went away, an error) cancels its statement and discards the
connection rather than return one mid-COPY to the pool; one that ends normally returns
it. Either way its slot and connection are released exactly once (`Download.aclose`,
which the route calls whatever happened).

Tokens are credentials: never logged (log lines name the job only).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.core.errors import Forbidden, Gone, NotFound, ServiceUnavailable
from gateway.core.resources import Resources
from gateway.core.settings import Environment, Settings
from gateway.jobs.download_tokens import (
    DEVELOPMENT_KEY,
    DEVELOPMENT_KEY_ID,
    Claims,
    TokenSigner,
)
from gateway.jobs.metrics import JobMetrics
from gateway.jobs.owner import Owner
from gateway.jobs.repository import downloads as repo
from gateway.kit.outage import database_guard, session_scope

Format = Literal["csv", "ndjson"]

log = structlog.get_logger("gateway.jobs.downloads")

PATH_PREFIX = "/v1/downloads/"
_JOB_ID = re.compile(r"job_[0-9a-f]{24}")
_MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
}
# Buffers (each what asyncpg read at once, up to its read size) waiting for the client.
_QUEUE_CHUNKS = 8
# Chunks handed to the server are joined up to about this size: fewer, larger writes.
_CHUNK_BYTES = 256 * 1024
# A refused download asks the client to come back after this many seconds.
_BUSY_RETRY_AFTER_S = 5
_END = b""


async def _nothing() -> None:
    return None


@dataclass(frozen=True)
class DownloadLink:
    """A signed URL path (`/v1/downloads/<token>`), when it expires, and its format."""

    path: str
    expires_at: datetime
    format: Format


@dataclass(frozen=True)
class Download:
    """An opened download: a file name, media type and the body's chunks.

    It holds a database connection and a download slot until `aclose()`, which the
    caller must await whether or not it read every chunk (a `finally`).
    """

    filename: str
    media_type: str
    chunks: AsyncIterator[bytes]
    release: Callable[[], Awaitable[None]] = field(default=_nothing)

    async def aclose(self) -> None:
        """Stop streaming and give the connection and the slot back (idempotent)."""
        await self.release()


def signer_for(settings: Settings) -> TokenSigner:
    """The configured keys; the public development key outside production when unset."""
    keys = [
        (kid, secret.get_secret_value().encode()) for kid, secret in settings.download_signing_keys
    ]
    if not keys and settings.environment is not Environment.PRODUCTION:
        keys = [(DEVELOPMENT_KEY_ID, DEVELOPMENT_KEY)]
    return TokenSigner(keys)


class DownloadService:
    """Issues and serves download links."""

    def __init__(self, resources: Resources, metrics: JobMetrics | None = None) -> None:
        self.resources = resources
        self.metrics = metrics
        self.signer = signer_for(resources.settings)
        self.active = 0  # downloads streaming now (this process)
        if not self.signer.can_sign:
            log.warning(
                "downloads_disabled",
                reason="DOWNLOAD_SIGNING_KEYS is unset in production: downloads answer 503",
            )

    async def issue(
        self, owner: Owner, job_id: str, fmt: Format, *, now: float | None = None
    ) -> DownloadLink:
        """A signed link to the owner's job results (404 for anyone else's job)."""
        if not self.signer.can_sign:
            raise ServiceUnavailable(
                "Downloads are not configured: set DOWNLOAD_SIGNING_KEYS",
                extra={"setting": "DOWNLOAD_SIGNING_KEYS"},
            )
        if not _JOB_ID.fullmatch(job_id):
            raise NotFound("No such job")
        async with session_scope(self.resources.sessionmaker) as session:
            gen = await repo.download_generation(session, job_id, owner.id)
        if gen is None:
            raise NotFound("No such job")
        token, claims = self.signer.sign(
            job=job_id,
            owner=owner.id,
            fmt=fmt,
            gen=gen,
            ttl_s=self.resources.settings.download_url_ttl_s,
            now=now,
        )
        return DownloadLink(
            path=PATH_PREFIX + token,
            expires_at=datetime.fromtimestamp(claims.exp, UTC),
            format=fmt,
        )

    async def revoke(self, owner: Owner, job_id: str) -> None:
        """End every link issued so far for the owner's job (404 for anyone else's)."""
        if not _JOB_ID.fullmatch(job_id):
            raise NotFound("No such job")
        async with session_scope(self.resources.sessionmaker, write=True) as session:
            found = await repo.bump_generation(session, job_id, owner.id)
        if not found:
            raise NotFound("No such job")
        log.info("download_links_revoked", job_id=job_id)

    async def open(self, token: str, *, now: float | None = None) -> Download:
        """Verify a token (403 tampered, 410 expired or revoked) and stream its rows."""
        claims = self.signer.verify(token, now=now)
        settings = self.resources.settings
        if self.active >= settings.download_max_concurrent:
            self._count(claims.fmt, "busy")
            raise ServiceUnavailable(
                "Too many downloads in progress: try again shortly",
                headers={"Retry-After": str(_BUSY_RETRY_AFTER_S)},
            )
        self.active += 1
        export = _Export(self, claims)
        try:
            first = await export.start()
        except BaseException:
            await export.close()
            raise
        return Download(
            filename=f"{claims.job}.{claims.fmt}",
            media_type=_MEDIA_TYPES[claims.fmt],
            chunks=export.chunks(first),
            release=export.close,
        )

    def _released(self, fmt: str, outcome: str) -> None:
        self.active -= 1
        self._count(fmt, outcome)

    def _count(self, fmt: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.downloads.labels(fmt, outcome).inc()


class _Export:
    """One download's connection, statement and slot, released once by `close`."""

    def __init__(self, service: DownloadService, claims: Claims) -> None:
        self._service = service
        self._claims = claims
        self._conn: AsyncConnection | None = None
        self._copy: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(_QUEUE_CHUNKS)
        self._cursor: Any = None
        self._prefetch: asyncio.Future[list[Any]] | None = None
        self._streaming = False  # the export statement was sent
        self._finished = False  # ...and ran to its end: the connection is clean
        self._closed = False
        self._started_at = time.monotonic()
        self._bytes = 0

    async def start(self) -> bytes:
        """Check the job against the token, begin the statement, return the first chunk."""
        settings = self._service.resources.settings
        with database_guard():
            self._conn = await self._service.resources.engine.connect()
            # Through SQLAlchemy, so this begins *its* transaction: the pool rolls it
            # back when the connection returns, and asyncpg's statements below (COPY,
            # the cursor, which needs a transaction) run inside it.
            audience = self._check(await repo.job_for_token(self._conn, self._claims.job))
            raw = await self._conn.get_raw_connection()
            apg = raw.driver_connection
            assert apg is not None  # a checked-out connection has its driver connection
            await apg.execute(
                f"SET LOCAL statement_timeout = {round(settings.download_max_s * 1000)};"
                " SET LOCAL TimeZone = 'UTC'"
            )
            self._streaming = True
            if self._claims.fmt == "csv":
                self._copy = asyncio.create_task(self._run_copy(apg, audience))
            else:
                # The whole result is read: plan for all rows, not the first few.
                await apg.execute("SET LOCAL cursor_tuple_fraction = 1.0")
                self._cursor = await apg.cursor(repo.ndjson_query(audience), self._claims.job)
            return await self._next()

    def _check(self, row: Any) -> str:
        claims = self._claims
        if row is None or row.state == "submitting":
            raise Gone("This job no longer exists")
        if row.owner != claims.owner:
            raise Forbidden("This download link is not valid for this job")
        if row.download_gen != claims.gen:
            raise Gone("This download link was revoked: ask for a new one")
        audience: str = row.audience
        return audience

    async def _run_copy(self, apg: Any, audience: str) -> None:
        await apg.copy_from_query(
            repo.csv_query(audience),
            self._claims.job,
            output=self._queue.put,
            format="csv",
            header=True,
            timeout=self._service.resources.settings.download_max_s,
        )
        await self._queue.put(_END)

    async def _next(self) -> bytes:
        """The next chunk (about `_CHUNK_BYTES`), `_END` after the last."""
        if self._finished:
            return _END
        if self._cursor is not None:
            return await self._next_rows()
        assert self._copy is not None
        parts: list[bytes] = []
        size = 0
        while size < _CHUNK_BYTES:
            if not self._queue.empty():
                chunk = self._queue.get_nowait()  # the common case: no task, no wait
                if chunk is _END or not chunk:
                    await self._copy
                    self._finished = True
                    break
                parts.append(chunk)
                size += len(chunk)
                continue
            if parts:
                break  # hand over what is here rather than wait for more
            get = asyncio.ensure_future(self._queue.get())
            done, _ = await asyncio.wait({get, self._copy}, return_when=asyncio.FIRST_COMPLETED)
            if get not in done:
                # The COPY ended first: failed (raise its error), or finished (its end
                # marker is queued, so the get completes at once).
                error = self._copy.exception()
                if error is not None:
                    get.cancel()
                    raise error
            chunk = await get
            if chunk is _END or not chunk:
                await self._copy  # finished: surfaces nothing, or its error
                self._finished = True
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)

    async def _next_rows(self) -> bytes:
        """One fetch of the cursor as NDJSON; the next fetch runs while this one is sent."""
        assert self._cursor is not None
        size = self._service.resources.settings.download_fetch_rows
        fetch = self._prefetch or asyncio.ensure_future(self._cursor.fetch(size))
        self._prefetch = None
        rows = await fetch
        if not rows:
            self._finished = True
            return _END
        # PostgreSQL keeps working on the next rows while the server writes these.
        self._prefetch = asyncio.ensure_future(self._cursor.fetch(size))
        return ("\n".join([r[0] for r in rows]) + "\n").encode()

    async def chunks(self, first: bytes) -> AsyncIterator[bytes]:
        """`first`, then every further chunk until the statement ends."""
        chunk = first
        while chunk:
            self._bytes += len(chunk)
            yield chunk
            with database_guard():
                chunk = await self._next()

    async def close(self) -> None:
        """Release the connection (discarded unless the statement finished) and the slot."""
        if self._closed:
            return
        self._closed = True
        try:
            for running in (self._copy, self._prefetch):
                if running is not None and not running.done():
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await running
            if self._conn is not None:
                if self._streaming and not self._finished:
                    # Mid-statement: do not hand a connection in an unknown protocol
                    # state to the next request; closing the socket also ends the query.
                    with contextlib.suppress(Exception):
                        await self._conn.invalidate()
                with contextlib.suppress(Exception):
                    await self._conn.close()
        finally:
            self._service._released(self._claims.fmt, "completed" if self._finished else "aborted")
            log.info(
                "download_closed",
                job_id=self._claims.job,
                format=self._claims.fmt,
                complete=self._finished,
                bytes=self._bytes,
                duration_ms=round((time.monotonic() - self._started_at) * 1000, 1),
            )
