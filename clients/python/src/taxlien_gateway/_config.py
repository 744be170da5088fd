"""What both clients are configured with: where the gateway is, and who is calling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from taxlien_gateway.retry import Retry, RetryPolicy

DEFAULT_BASE_URL = "http://localhost:8080"
USER_AGENT = "tax-lien-gateway-client/0.1"
# The gateway sends a keep-alive comment every 15 s on an idle stream: four missed ones
# mean the connection is dead, and the follower reconnects.
STREAM_READ_TIMEOUT_S = 60.0

Token = str | Callable[[], str]
OnRetry = Callable[[Retry], None]


@dataclass(frozen=True)
class Config:
    """The settings shared by `Client` and `AsyncClient`."""

    base_url: str
    api_key: str | None
    token: Token | None
    retry: RetryPolicy
    on_retry: OnRetry | None
    max_reconnects: int

    def __post_init__(self) -> None:
        if self.api_key is not None and self.token is not None:
            # The gateway refuses both at once (401 ambiguous_credentials).
            raise ValueError("give api_key or token, not both")

    def auth_headers(self) -> dict[str, str]:
        """The credentials of the next request (a callable token is asked each time, so
        an expiring ID token can be refreshed)."""
        if self.api_key is not None:
            return {"X-API-Key": self.api_key}
        if self.token is not None:
            token = self.token() if callable(self.token) else self.token
            return {"Authorization": f"Bearer {token}"}
        return {}

    def notify(self, retry: Retry) -> None:
        """Tell the `on_retry` hook about a retry about to happen."""
        if self.on_retry is not None:
            self.on_retry(retry)


def stream_timeout(timeout: httpx.Timeout) -> httpx.Timeout:
    """The client's timeouts with a read timeout long enough for an idle event stream."""
    return httpx.Timeout(
        connect=timeout.connect,
        read=STREAM_READ_TIMEOUT_S,
        write=timeout.write,
        pool=timeout.pool,
    )
