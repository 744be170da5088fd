"""The asynchronous client: `AsyncClient` and its namespaces, the surface of `_sync.py`
with `await` (and `async for` over pagers and followers). Keep the two in step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar

import httpx

from taxlien_gateway import _operations as ops
from taxlien_gateway._call import Call, decode
from taxlien_gateway._config import (
    DEFAULT_BASE_URL,
    USER_AGENT,
    Config,
    OnRetry,
    Token,
    stream_timeout,
)
from taxlien_gateway._sse import FollowState
from taxlien_gateway.errors import GatewayError, StreamInterrupted
from taxlien_gateway.models import (
    ApiKey,
    CreatedJob,
    CreatedWebhookEndpoint,
    Delivery,
    FollowEvent,
    HistoryEntry,
    IssuedApiKey,
    Job,
    JobItem,
    Me,
    ParcelChange,
    Property,
    RotatedSecret,
    Watch,
    WebhookEndpoint,
)
from taxlien_gateway.pagination import AsyncPager
from taxlien_gateway.ratelimit import RateLimit, parse_rate_limit
from taxlien_gateway.retry import Retry, RetryPolicy

T = TypeVar("T")
_UNSET: Any = object()


class AsyncClient:
    """A synchronous client of the gateway's public API (thread-safe like httpx.AsyncClient).

    Give `api_key` (`X-API-Key`) or `token` (`Authorization: Bearer`; a callable is asked
    before every request, for ID tokens that expire). `retry` bounds the retries;
    `on_retry` is told about each one. Pass `http_client` to reuse your own
    `httpx.AsyncClient` (its base URL must be the gateway's); it is then yours to close.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        token: Token | None = None,
        timeout: float | httpx.Timeout = 30.0,
        retry: RetryPolicy | None = None,
        on_retry: OnRetry | None = None,
        max_reconnects: int = 5,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._config = Config(
            base_url, api_key, token, retry or RetryPolicy(), on_retry, max_reconnects
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers={"User-Agent": USER_AGENT}
        )
        self.rate_limit: RateLimit | None = None
        """The rate-limit state of the last answer that carried one."""
        self.properties = AsyncProperties(self)
        self.jobs = AsyncJobs(self)
        self.webhooks = AsyncWebhooks(self)
        self.watches = AsyncWatches(self)
        self.api_keys = AsyncApiKeys(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless it was given to the client)."""
        if self._owns_http:
            await self._http.aclose()

    async def me(self) -> Me:
        """`GET /v1/me`: who the caller is, their tier, usage and job credits."""
        return await self.send(ops.me())

    async def send(self, call: Call[T]) -> T:
        """Send one call with its retries; its answer's model (or a `GatewayError`)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.query(),
                    json=call.json,
                    headers={**self._config.auth_headers(), **call.headers()},
                )
            except httpx.TransportError as exc:
                delay = self._config.retry.delay_after_error(attempt, call.method, exc)
                if delay is None:
                    raise
                await self._wait(Retry(call.method, call.path, attempt, delay, error=exc))
                continue
            self._saw(response)
            delay = self._config.retry.delay_after_response(attempt, response)
            if delay is None:
                return decode(call, response)
            await self._wait(Retry(call.method, call.path, attempt, delay, response.status_code))

    def _saw(self, response: httpx.Response) -> None:
        found = parse_rate_limit(response.headers)
        if found is not None:
            self.rate_limit = found

    async def _wait(self, retry: Retry) -> None:
        self._config.notify(retry)
        await asyncio.sleep(retry.delay_s)

    async def _follow(self, path: str, state: FollowState) -> AsyncIterator[FollowEvent]:
        timeout = stream_timeout(self._http.timeout)
        attempt = 0  # refused connections in a row (429 too-many-followers, 503)
        while not state.done:
            error: Exception | None = None
            try:
                headers = {**self._config.auth_headers(), **state.headers()}
                async with self._http.stream("GET", path, headers=headers, timeout=timeout) as resp:
                    if resp.status_code == 204:
                        return  # resumed after the terminal event: nothing follows
                    if resp.status_code != 200:
                        await resp.aread()
                        attempt += 1
                        delay = self._config.retry.delay_after_response(attempt, resp)
                        if delay is None:
                            raise GatewayError.from_response(resp)
                        await self._wait(Retry("GET", path, attempt, delay, resp.status_code))
                        continue
                    attempt = 0
                    state.parser.reset()
                    async for line in resp.aiter_lines():
                        message = state.parser.feed(line)
                        event = None if message is None else state.accept(message)
                        if event is not None:
                            yield event
                        if state.done:
                            return
            except httpx.TransportError as exc:
                error = exc
            state.failures += 1
            if state.failures > self._config.max_reconnects:
                raise StreamInterrupted(
                    f"the event stream of {path} broke {state.failures} times in a row",
                    last_event_id=state.last_event_id,
                ) from error
            delay = state.reconnect_delay_s()
            await self._wait(Retry("GET", path, state.failures, delay, error=error))


class AsyncProperties:
    """`/v1/properties`: parcels' current records, their history, and search."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def get(self, parcel_id: str) -> Property:
        """One parcel's current record (`NotFound` when there is none)."""
        return await self._c.send(ops.get_property(parcel_id))

    def history(self, parcel_id: str, *, limit: int | None = None) -> AsyncPager[HistoryEntry]:
        """Every accepted result of a parcel, oldest first (`limit`: page size)."""
        return AsyncPager(self._c.send, ops.property_history(parcel_id, limit))

    def search(
        self,
        *,
        state: str | None = None,
        county: str | None = None,
        lien_status: str | None = None,
        min_amount: Decimal | float | str | None = None,
        max_amount: Decimal | float | str | None = None,
        q: str | None = None,
        limit: int | None = None,
    ) -> AsyncPager[Property]:
        """Parcels matching every given filter, by parcel id, across every page."""
        return AsyncPager(
            self._c.send,
            ops.search_properties(
                state=state,
                county=county,
                lien_status=lien_status,
                min_amount=min_amount,
                max_amount=max_amount,
                q=q,
                limit=limit,
            ),
        )


class AsyncJobs:
    """`/v1/jobs`: submit, read, list, cancel and follow client jobs."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(
        self,
        kind: str,
        items: Sequence[dict[str, str]],
        *,
        priority: int | None = None,
        deadline: datetime | None = None,
        label: str | None = None,
        idempotency_key: str | None = None,
    ) -> CreatedJob:
        """Submit a job (`parcel_refresh` items: `{"platform", "parcel_id"}`)."""
        return await self._c.send(
            ops.create_job(
                kind=kind,
                items=items,
                priority=priority,
                deadline=deadline,
                label=label,
                key=idempotency_key,
            )
        )

    async def get(self, job_id: str) -> Job:
        """One of the caller's jobs."""
        return await self._c.send(ops.get_job(job_id))

    def list(
        self,
        *,
        status: str | Sequence[str] | None = None,
        kind: str | None = None,
        created_after: datetime | None = None,
        limit: int | None = None,
    ) -> AsyncPager[Job]:
        """The caller's jobs, newest first, across every page."""
        return AsyncPager(
            self._c.send,
            ops.list_jobs(status=status, kind=kind, created_after=created_after, limit=limit),
        )

    def items(
        self, job_id: str, *, status: str | None = None, limit: int | None = None
    ) -> AsyncPager[JobItem]:
        """A job's items by index, across every page."""
        return AsyncPager(self._c.send, ops.job_items(job_id, status=status, limit=limit))

    async def cancel(self, job_id: str, *, idempotency_key: str | None = None) -> Job:
        """Cancel an unfinished job (`Conflict` once it finished)."""
        return await self._c.send(ops.cancel_job(job_id, idempotency_key))

    def follow(
        self, job_id: str, *, last_event_id: str | None = None
    ) -> AsyncIterator[FollowEvent]:
        """The job's events over Server-Sent Events until its terminal event.

        First a `JobSnapshot` (or, resuming after `last_event_id`, the missed events);
        a broken connection is resumed with `Last-Event-ID`, so nothing is lost or
        repeated. Raises `StreamInterrupted` after `max_reconnects` fruitless
        reconnections in a row.
        """
        return self._c._follow(ops.job_events_path(job_id), FollowState(last_event_id))

    async def wait(self, job_id: str) -> Job:
        """Follow the job until it finishes; the finished job."""
        async for _ in self.follow(job_id):
            pass
        return await self.get(job_id)


class AsyncWebhooks:
    """`/v1/webhooks`: endpoints, their secrets, deliveries and test events."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(
        self,
        url: str,
        events: Sequence[str],
        *,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> CreatedWebhookEndpoint:
        """Register an endpoint; the answer carries its `secret` (shown only here)."""
        return await self._c.send(ops.create_webhook(url, events, description, idempotency_key))

    def list(self, *, limit: int | None = None) -> AsyncPager[WebhookEndpoint]:
        """The caller's endpoints, newest first, across every page."""
        return AsyncPager(self._c.send, ops.list_webhooks(limit))

    async def get(self, endpoint_id: str) -> WebhookEndpoint:
        """One endpoint."""
        return await self._c.send(ops.get_webhook(endpoint_id))

    async def update(
        self,
        endpoint_id: str,
        *,
        url: str = _UNSET,
        events: Sequence[str] = _UNSET,
        description: str | None = _UNSET,
        enabled: bool = _UNSET,
    ) -> WebhookEndpoint:
        """Change only the given fields (`description=None` clears it)."""
        given: dict[str, Any] = {
            "url": url,
            "events": events if events is _UNSET else [*events],
            "description": description,
            "enabled": enabled,
        }
        changes = {name: value for name, value in given.items() if value is not _UNSET}
        return await self._c.send(ops.update_webhook(endpoint_id, changes))

    async def delete(self, endpoint_id: str) -> None:
        """Delete an endpoint and its deliveries log."""
        await self._c.send(ops.delete_webhook(endpoint_id))

    async def rotate_secret(
        self, endpoint_id: str, *, idempotency_key: str | None = None
    ) -> RotatedSecret:
        """A new secret; the old one keeps signing until `previous_secret_expires_at`."""
        return await self._c.send(ops.rotate_webhook_secret(endpoint_id, idempotency_key))

    async def test(self, endpoint_id: str, *, idempotency_key: str | None = None) -> Delivery:
        """Queue a `webhook.test` delivery through the real delivery path."""
        return await self._c.send(ops.test_webhook(endpoint_id, idempotency_key))

    def deliveries(
        self,
        endpoint_id: str,
        *,
        status: str | Sequence[str] | None = None,
        limit: int | None = None,
    ) -> AsyncPager[Delivery]:
        """An endpoint's deliveries, newest first, across every page."""
        return AsyncPager(self._c.send, ops.list_deliveries(endpoint_id, status, limit))

    async def delivery(self, endpoint_id: str, delivery_id: str) -> Delivery:
        """One delivery and its recent attempts."""
        return await self._c.send(ops.get_delivery(endpoint_id, delivery_id))

    async def redeliver(
        self, endpoint_id: str, delivery_id: str, *, idempotency_key: str | None = None
    ) -> Delivery:
        """Send a delivery again (same `webhook-id`)."""
        return await self._c.send(ops.redeliver(endpoint_id, delivery_id, idempotency_key))


class AsyncWatches:
    """`/v1/watches`: watch parcels and read what changed."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(
        self,
        platform: str,
        parcel_ids: Sequence[str],
        *,
        fields: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Watch:
        """Watch parcels of one platform (`fields`: which facts count; default all)."""
        return await self._c.send(ops.create_watch(platform, parcel_ids, fields, idempotency_key))

    def list(self, *, limit: int | None = None) -> AsyncPager[Watch]:
        """The caller's watches, newest first, across every page."""
        return AsyncPager(self._c.send, ops.list_watches(limit))

    async def get(self, watch_id: str) -> Watch:
        """One watch."""
        return await self._c.send(ops.get_watch(watch_id))

    async def delete(self, watch_id: str) -> None:
        """Stop watching (the watch's changes log goes too)."""
        await self._c.send(ops.delete_watch(watch_id))

    def changes(self, watch_id: str, *, limit: int | None = None) -> AsyncPager[ParcelChange]:
        """The watch's recorded changes, newest first, across every page."""
        return AsyncPager(self._c.send, ops.watch_changes(watch_id, limit))


class AsyncApiKeys:
    """`/v1/api-keys`: the caller's API keys."""

    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(
        self,
        name: str,
        *,
        tier: str | None = None,
        scopes: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> IssuedApiKey:
        """A new key of the caller's user (`scopes`: what it may do, within what its
        owner may); its secret (`key`) is shown only here."""
        return await self._c.send(ops.create_api_key(name, tier, scopes, idempotency_key))

    async def list(self) -> list[ApiKey]:
        """The caller's keys, newest first, without secrets."""
        return (await self._c.send(ops.list_api_keys())).items

    async def rotate(self, key_id: str, *, idempotency_key: str | None = None) -> IssuedApiKey:
        """Replace a key's secret (the old one stops working)."""
        return await self._c.send(ops.rotate_api_key(key_id, idempotency_key))

    async def revoke(self, key_id: str) -> None:
        """Revoke a key."""
        await self._c.send(ops.revoke_api_key(key_id))
