"""`ProxySession`: a leased proxy as an async context manager.

```python
async with ctx.proxy() as proxy:
    response = await scrape(via=proxy.url)
    if response.status_code in (403, 429):
        await proxy.rotate("banned", response.status_code)   # swap to another proxy
```

On exit the proxy is released with the outcome reported last (`ok` by default, `error`
when the block raised). A cancelled block (lease lost, worker terminating) releases with
`ok`: the cancellation says nothing about the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from taxlien_worker.http import WorkerClient
from taxlien_worker.models import (
    GatewayUnavailable,
    NoProxyAvailable,
    ProxyLease,
    ProxyOutcome,
)

MAX_PROXY_WAIT_STEP_S = 5.0


class ProxySession:
    """One proxy lease for one platform, released on exit."""

    def __init__(self, client: WorkerClient, platform: str, *, wait_s: float = 30.0) -> None:
        self._client = client
        self._platform = platform
        self._wait_s = wait_s
        self._lease: ProxyLease | None = None
        self._outcome: ProxyOutcome | None = None
        self._status_code: int | None = None

    @property
    def lease(self) -> ProxyLease:
        """The current lease (changes on rotate)."""
        if self._lease is None:
            raise RuntimeError("the proxy session is not active")
        return self._lease

    @property
    def url(self) -> str:
        """The proxy URL, credentials included: hand it to the HTTP client, never log it."""
        return self.lease.proxy_url

    def report(self, outcome: ProxyOutcome, status_code: int | None = None) -> None:
        """Set the outcome the release on exit will report."""
        self._outcome = outcome
        self._status_code = status_code

    async def _acquire(self) -> ProxyLease:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        while True:
            try:
                return await self._client.lease_proxy(self._platform)
            except NoProxyAvailable as exc:
                left = deadline - loop.time()
                if left <= 0:
                    raise
                await asyncio.sleep(min(left, exc.retry_after_s or 1.0, MAX_PROXY_WAIT_STEP_S))

    async def rotate(self, outcome: ProxyOutcome = "banned", status_code: int | None = None) -> str:
        """Release the current proxy with `outcome` and switch to another; returns its URL."""
        try:
            self._lease = await self._client.rotate_proxy(self.lease, outcome, status_code)
        except NoProxyAvailable:
            # The old lease was released by the rotate call; wait for a free proxy.
            self._lease = None
            self._lease = await self._acquire()
        self._outcome = None
        return self._lease.proxy_url

    async def __aenter__(self) -> ProxySession:
        self._lease = await self._acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        outcome = self._outcome
        if outcome is None:
            failed = exc is not None and not isinstance(exc, asyncio.CancelledError)
            outcome = "error" if failed else "ok"
        # If the gateway is unreachable the lease simply expires and returns to the pool.
        with contextlib.suppress(GatewayUnavailable):
            await self._client.release_proxy(lease, outcome, self._status_code)
