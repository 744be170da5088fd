"""Proxy URL validation and masking: the one place that decides what may be printed."""

from __future__ import annotations

from urllib.parse import urlsplit

SCHEMES = frozenset({"http", "https", "socks5", "socks5h"})
MASK = "****"


class InvalidProxyUrl(ValueError):
    """The text is not a usable proxy URL; the message never repeats the URL."""


def normalize_proxy_url(url: str) -> str:
    """Check a proxy URL (scheme, host, port; nothing after the authority)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidProxyUrl("not a valid URL (bad port or brackets)") from exc
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidProxyUrl(f"scheme must be one of {', '.join(sorted(SCHEMES))}")
    if not parts.hostname:
        raise InvalidProxyUrl("the URL names no host")
    if port is None:
        raise InvalidProxyUrl("the URL must name a port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidProxyUrl("a proxy URL has no path, query or fragment")
    if any(c.isspace() or ord(c) < 32 for c in text):
        raise InvalidProxyUrl("the URL contains whitespace or control characters")
    return text.rstrip("/")


def mask_proxy_url(url: str) -> str:
    """The URL with its password replaced (user names stay: they identify accounts)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    if parts.username is None and parts.password is None:
        return url
    netloc = host if ":" not in host else f"[{host}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    user = parts.username or ""
    credentials = f"{user}:{MASK}" if parts.password is not None else user
    return f"{parts.scheme}://{credentials}@{netloc}"
