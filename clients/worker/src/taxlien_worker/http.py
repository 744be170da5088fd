"""`WorkerClient`: one method per endpoint of the worker protocol, nothing more.

Errors are mapped once: connection failures, timeouts and 5xx become
`GatewayUnavailable` (retry the same call, honouring `retry_after_s`); other 4xx become
`WorkerClientError` (retrying will not help). Retrying is the caller's decision; the
`Worker` loop and `ResultBuffer` do it where it is safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from taxlien_worker.models import (
    GatewayUnavailable,
    HeartbeatReply,
    NoProxyAvailable,
    ProxyLease,
    ProxyOutcome,
    Result,
    ResultOutcome,
    Task,
    WorkerClientError,
)

TOKEN_HEADER = "X-Worker-Token"  # noqa: S105 - a header name, not a secret
# A long-poll may be held `wait` seconds by the gateway; the read timeout must outlast it.
LONG_POLL_MARGIN_S = 10.0


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def _problem(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:500]


class WorkerClient:
    """Async client of one internal port (parcel or party) for one worker id."""

    def __init__(
        self,
        base_url: str,
        token: str,
        worker_id: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.worker_id = worker_id
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout_s)
        self._base = base_url.rstrip("/") if http is not None else ""
        self._headers = {TOKEN_HEADER: token}

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> WorkerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        extra: dict[str, Any] = {}
        if timeout_s is not None:
            extra["timeout"] = httpx.Timeout(timeout_s)
        try:
            response = await self._http.request(
                method, self._base + path, json=json, params=params, headers=self._headers, **extra
            )
        except httpx.TransportError as exc:
            raise GatewayUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            problem = _problem(response)
            no_proxy = isinstance(problem, dict) and problem.get("reason") == "no_proxy_available"
            error = NoProxyAvailable if no_proxy else GatewayUnavailable
            raise error(
                f"{method} {path}: {response.status_code}",
                response.status_code,
                problem,
                _retry_after(response),
            )
        if response.status_code >= 400:
            raise WorkerClientError(
                f"{method} {path}: {response.status_code}", response.status_code, _problem(response)
            )
        return response.json()

    async def lease(
        self, platforms: Sequence[str], limit: int = 1, wait_s: float = 0
    ) -> list[Task]:
        """Lease up to `limit` tasks, long-polling up to `wait_s` seconds."""
        doc = await self._call(
            "GET",
            "/internal/work",
            params={
                "worker_id": self.worker_id,
                "platforms": ",".join(platforms),
                "limit": limit,
                "wait": wait_s,
            },
            timeout_s=wait_s + LONG_POLL_MARGIN_S,
        )
        return [Task.from_json(item) for item in doc["tasks"]]

    async def post_results(self, results: Sequence[Result]) -> list[ResultOutcome]:
        """Post one batch; one outcome per item, in order. Raises on 503 (retry it)."""
        doc = await self._call(
            "POST",
            "/internal/results",
            json={"worker_id": self.worker_id, "results": [r.to_json() for r in results]},
        )
        return [ResultOutcome.from_json(item) for item in doc["results"]]

    async def heartbeat(
        self,
        platforms: Sequence[str],
        lease_ids: Iterable[str],
        *,
        version: str | None = None,
        stats: dict[str, Any] | None = None,
    ) -> HeartbeatReply:
        """Register the worker and extend the leases it still holds."""
        body: dict[str, Any] = {
            "worker_id": self.worker_id,
            "platforms": list(platforms),
            "lease_ids": list(lease_ids),
        }
        if version is not None:
            body["version"] = version
        if stats is not None:
            body["stats"] = stats
        doc = await self._call("POST", "/internal/heartbeat", json=body)
        return HeartbeatReply(
            extended=list(doc["extended"]),
            lost=list(doc["lost"]),
            command=doc["command"],
            heartbeat_interval_s=float(doc["heartbeat_interval_s"]),
        )

    async def enqueue(self, tasks: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Enqueue tasks (producer tokens only)."""
        doc: dict[str, Any] = await self._call("POST", "/internal/tasks", json={"tasks": tasks})
        return doc

    async def lease_proxy(self, platform: str) -> ProxyLease:
        """Lease a proxy; `NoProxyAvailable` (with `retry_after_s`) when none is free."""
        doc = await self._call(
            "POST",
            "/internal/proxy/lease",
            json={"worker_id": self.worker_id, "platform": platform},
        )
        return ProxyLease.from_json(doc)

    def _release_body(self, lease: ProxyLease, outcome: ProxyOutcome) -> dict[str, Any]:
        # The gateway binds a proxy lease to the token and worker id that leased it.
        return {
            "worker_id": self.worker_id,
            "proxy_lease_id": lease.proxy_lease_id,
            "outcome": outcome,
        }

    async def release_proxy(
        self, lease: ProxyLease, outcome: ProxyOutcome = "ok", status_code: int | None = None
    ) -> str:
        """Release a proxy with its outcome; returns the gateway's release status."""
        body = self._release_body(lease, outcome)
        if status_code is not None:
            body["status_code"] = status_code
        try:
            doc = await self._call("POST", "/internal/proxy/release", json=body)
        except WorkerClientError as exc:
            if exc.status == 404:  # expired long ago: nothing left to release
                return "unknown"
            raise
        return str(doc["status"])

    async def rotate_proxy(
        self, lease: ProxyLease, outcome: ProxyOutcome = "banned", status_code: int | None = None
    ) -> ProxyLease:
        """Release `lease` with an outcome and lease a different proxy, in one call."""
        body = self._release_body(lease, outcome)
        if status_code is not None:
            body["status_code"] = status_code
        return ProxyLease.from_json(await self._call("POST", "/internal/proxy/rotate", json=body))
