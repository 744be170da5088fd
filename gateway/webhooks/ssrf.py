"""TEMPORARY stand-in for the SSRF guard (the `whsign` branch owns the real one).

Only the interface the endpoint service calls: `check_url` and `resolve_public`, both
raising `InvalidWebhookUrl` (a 422 naming the body's `url`). Replaced at merge.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from gateway.core.errors import InvalidInput

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


class InvalidWebhookUrl(InvalidInput):
    """The endpoint URL is not one the gateway may call (422 naming `url`)."""

    def __init__(self, msg: str) -> None:
        super().__init__([{"loc": ["body", "url"], "msg": msg, "type": "value_error"}])


def check_url(url: str, *, allow_private: bool, require_https: bool) -> str:
    """The URL, normalised, if its form is acceptable (scheme, host, no userinfo, port)."""
    if len(url) > 2048:
        raise InvalidWebhookUrl("must be at most 2048 characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidWebhookUrl(f"not a valid URL: {exc}") from None
    schemes = ("https",) if require_https else ("http", "https")
    if parts.scheme.lower() not in schemes:
        raise InvalidWebhookUrl(f"scheme must be {' or '.join(schemes)}")
    if not parts.hostname:
        raise InvalidWebhookUrl("must name a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("must not contain a user name or password")
    if port == 0:
        raise InvalidWebhookUrl("port 0 is not allowed")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None and not allow_private:
        _refuse(literal)
    return parts._replace(scheme=parts.scheme.lower(), fragment="").geturl()


def _refuse(address: Address) -> None:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    checks = (
        ("a cloud metadata address", address in _METADATA),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for what, hit in checks:
        if hit:
            raise InvalidWebhookUrl(f"address refused: {address} is {what}")


async def resolve_public(host: str, port: int, *, allow_private: bool) -> list[Address]:
    """Every address `host` resolves to, if none is refused."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InvalidWebhookUrl(f"host {host!r} does not resolve") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            _refuse(address)
    return addresses
