"""One webhook delivery attempt: POST a signed body to an endpoint, with the SSRF guard.

`WebhookSender.send` checks the URL (`ssrf.check_url`), resolves the host and checks
every address (`ssrf.resolve_public`), then connects to a checked address itself: the
request goes to `https://<address>/...` with the `Host` header and the TLS server name
(SNI) of the hostname, and the certificate is verified against the hostname. The name
is never resolved again between check and connect, so DNS rebinding gains nothing.

Redirects are not followed (a 3xx is a failed attempt), at most `excerpt_bytes` of the
answer are read, and the whole attempt (DNS, connect, send, read) has one deadline.
Network problems never raise: they are the attempt's `error` (`timeout`, `connection
refused`, `address refused: 127.0.0.1 is loopback`, ...). Neither headers (signatures)
nor bodies are logged.

Connections are not kept alive: a pooled connection is keyed by address, and reusing one
that was verified for one hostname for another hostname on the same address would skip
that hostname's certificate check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import httpx

from gateway.webhooks.ssrf import (
    InvalidWebhookUrl,
    IPAddress,
    check_url,
    resolve_public,
)

USER_AGENT = "tax-lien-gateway-webhooks/1"

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery attempt found: the receiver's status, or why there was none."""

    status: int | None
    error: str | None
    latency_ms: float
    excerpt: str

    @property
    def succeeded(self) -> bool:
        """A 2xx answer: the receiver took the event."""
        return self.error is None and self.status is not None and 200 <= self.status < 300


class WebhookSender:
    """Sends attempts over a client of its own (no redirects, no keep-alive, no proxies).

    `allow_private` is WEBHOOK_ALLOW_PRIVATE_NETWORKS; `require_https` refuses `http`
    URLs (production). `verify` is the TLS trust (a context in tests); `resolver`
    replaces `ssrf.resolve_public` in tests that need a hostname to resolve somewhere.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        require_https: bool = False,
        verify: ssl.SSLContext | bool = True,
        resolver: Resolver | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._require_https = require_https
        self._resolve: Resolver = resolver or self._resolve_public
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            verify=verify,
            # Proxies from the environment would connect by name, past the address check.
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": USER_AGENT},
        )

    async def _resolve_public(self, host: str, port: int) -> list[IPAddress]:
        return await resolve_public(host, port, allow_private=self._allow_private)

    async def aclose(self) -> None:
        """Close the client (idempotent)."""
        await self._client.aclose()

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        timeout_s: float,
        excerpt_bytes: int,
    ) -> Attempt:
        """POST `body` with `headers` to `url`; never raises for the network or the URL."""
        started = time.perf_counter()
        status: int | None = None
        excerpt = b""
        error: str | None = None
        try:
            async with asyncio.timeout(timeout_s):
                status, excerpt, error = await self._attempt(
                    url, headers, body, timeout_s, excerpt_bytes
                )
        except TimeoutError:
            error = "timeout"
        except InvalidWebhookUrl as exc:
            error = exc.reason
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.InvalidURL:
            error = "not a valid URL"
        except httpx.HTTPError as exc:
            error = _describe(exc)
        except OSError as exc:
            error = _describe(exc)
        return Attempt(
            status=status,
            error=error,
            latency_ms=(time.perf_counter() - started) * 1000,
            excerpt=_text(excerpt),
        )

    async def _attempt(
        self,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        timeout_s: float,
        excerpt_bytes: int,
    ) -> tuple[int, bytes, str | None]:
        checked = check_url(
            url, allow_private=self._allow_private, require_https=self._require_https
        )
        parts = urlsplit(checked)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = await self._resolve(host, port)
        literal = _is_literal(host)
        request_headers = httpx.Headers({"Content-Type": "application/json"})
        request_headers.update(headers)
        # Set last, replacing a caller's spelling of them (headers are case-insensitive).
        request_headers["Host"] = parts.netloc
        # The excerpt is raw bytes: a compressed answer could expand without bound.
        request_headers["Accept-Encoding"] = "identity"
        last: httpx.ConnectError | None = None
        for address in addresses:
            target = httpx.URL(checked).copy_with(host=str(address))
            extensions = {} if literal or parts.scheme != "https" else {"sni_hostname": host}
            request = self._client.build_request(
                "POST",
                target,
                headers=request_headers,
                content=body,
                timeout=timeout_s,
                extensions=extensions,
            )
            try:
                response = await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                # Try the host's next checked address, as a browser would.
                last = exc
                continue
            excerpt = bytearray()
            try:
                await _read_into(excerpt, response, excerpt_bytes)
            except httpx.HTTPError:
                pass  # the status is the answer; a body cut short only shortens the excerpt
            finally:
                await response.aclose()
            error = "redirect not followed" if 300 <= response.status_code < 400 else None
            return response.status_code, bytes(excerpt), error
        if last is None:  # the resolver returned no address (resolve_public never does)
            raise httpx.ConnectError("no address to connect to")
        raise last


async def _read_into(taken: bytearray, response: httpx.Response, limit: int) -> None:
    """Append the answer's first `limit` bytes to `taken`; the rest is never read."""
    if limit <= 0:
        return
    async for chunk in response.aiter_raw():
        taken += chunk[: limit - len(taken)]
        if len(taken) >= limit:
            return


def _text(excerpt: bytes) -> str:
    # Stored in PostgreSQL text, which holds no NUL; invalid UTF-8 becomes U+FFFD.
    return excerpt.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _describe(exc: BaseException) -> str:
    """A short reason for a failed connection, from the exception and its causes."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for cause in seen:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"tls: {cause.verify_message or 'certificate verify failed'}"
        if isinstance(cause, ssl.SSLError):
            return f"tls: {cause.reason or cause}"
    text = str(exc)
    if "refused" in text.lower() or "connect call failed" in text.lower():
        return "connection refused"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {text}"[:200]
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed: {text}"[:200] if text else "connection failed"
    return f"{type(exc).__name__}: {text}"[:200]
