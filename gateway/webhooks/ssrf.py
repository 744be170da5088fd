"""Which webhook URLs and addresses the gateway may call (server-side request forgery guard).

A webhook makes the gateway send requests to a URL a caller chose; without a guard a
caller could aim it at the gateway's own network: Redis, PostgreSQL, the internal apps,
the cloud metadata service. Two checks, both needed:

- `check_url` when an endpoint is registered or changed, and again before each send: an
  absolute `http`/`https` URL (only `https` in production), a host, no `user:password@`,
  no fragment, a port that is not a known non-HTTP service, at most 2048 characters.
  It returns the URL normalised (lower-case scheme and host, IDNA host, no default port).
- `resolve_public` when registering and on every send: every address the host resolves
  to must be public; one private, loopback, link-local, multicast, unspecified, reserved
  or cloud metadata address refuses the host (IPv4 embedded in IPv6 is checked as IPv4).
  The sender then connects to an address it checked, never resolving the name again, so
  a DNS answer that changes between check and connect (rebinding) gains nothing.

`allow_private=True` (WEBHOOK_ALLOW_PRIVATE_NETWORKS; refused in production) skips the
address classes for development and tests, except cloud metadata addresses: nothing
legitimate is ever there, and they are the prize of an SSRF.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import Any
from urllib.parse import urlsplit

from gateway.core.errors import InvalidInput

MAX_URL_LENGTH = 2048
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services: AWS/GCP/Azure/OpenStack, AWS over IPv6, Alibaba Cloud.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
# The Fetch standard's "bad ports" (https://fetch.spec.whatwg.org/#port-blocking): ports of
# services that must not receive HTTP a third party composed (SMTP, IRC, SIP, ...).
BAD_PORTS = frozenset(
    {1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95}
    | {101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161}
    | {179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563}
    | {587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060}
    | {5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# A last label that URL parsers and inet_aton read as a number: "2130706433", "0x7f.1".
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class InvalidWebhookUrl(InvalidInput):
    """422 naming `url`: the webhook URL is malformed or points where the gateway won't go.

    `reason` is the message alone (for a delivery attempt's `error`); the URL itself is
    not repeated in the problem, it is the caller's own input.
    """

    slug = "invalid-webhook-url"
    title = "Webhook URL refused"

    def __init__(self, reason: str, *, type: str = "invalid_webhook_url") -> None:
        super().__init__(
            [{"loc": ["body", "url"], "msg": reason, "type": type}],
            detail=f"The webhook URL is refused: {reason}",
        )
        self.reason = reason


class UnresolvableHost(InvalidWebhookUrl):
    """The URL's host has no address (or DNS failed)."""

    def __init__(self, host: str) -> None:
        super().__init__(f"host {host} does not resolve", type="unresolvable_host")


class AddressRefused(InvalidWebhookUrl):
    """The host resolves to an address the gateway refuses to call: `address refused: ...`."""

    def __init__(self, address: IPAddress, why: str) -> None:
        super().__init__(f"address refused: {address} is {why}", type="address_refused")
        self.address = address
        self.why = why


def check_url(url: str, *, allow_private: bool, require_https: bool) -> str:
    """The URL normalised, or `InvalidWebhookUrl` saying what is wrong with it.

    Literal addresses in the URL are classified here too (`http://127.0.0.1/` fails
    without a DNS lookup); names are checked by `resolve_public`.
    """
    if not isinstance(url, str) or not url:
        raise InvalidWebhookUrl("a URL is required")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        raise InvalidWebhookUrl("contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidWebhookUrl("not a valid URL (bad host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidWebhookUrl("the scheme must be https" + ("" if require_https else " or http"))
    if require_https and scheme != "https":
        raise InvalidWebhookUrl("the scheme must be https")
    if "@" in parts.netloc:
        raise InvalidWebhookUrl("user information (user:password@) is not allowed")
    if parts.fragment or url.endswith("#"):
        raise InvalidWebhookUrl("a fragment (#...) is not allowed")
    host = _normal_host(parts.hostname or "")
    if port is not None and not 0 < port < 65536:
        raise InvalidWebhookUrl("the port must be 1 to 65535")
    if port is not None and port in BAD_PORTS:
        raise InvalidWebhookUrl(f"port {port} is not allowed")
    literal = _literal_address(host)
    if literal is not None:
        refusal = refused_because(literal, allow_private=allow_private)
        if refusal is not None:
            raise AddressRefused(literal, refusal)
    netloc = f"[{host}]" if isinstance(literal, ipaddress.IPv6Address) else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{parts.path or '/'}{query}"


def _normal_host(raw: str) -> str:
    """The host lower-cased, IDNA-encoded, without a trailing dot; refuses odd ones."""
    if not raw:
        raise InvalidWebhookUrl("the URL has no host")
    if _literal_address(raw) is not None:
        return str(_literal_address(raw))
    # "example.com." is the same name, fully qualified; empty labels fail below.
    host = raw.removesuffix(".")
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidWebhookUrl("the host is not a valid name") from None
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidWebhookUrl("the host is not a valid name")
    # inet_aton (and so getaddrinfo) reads "127.1" or "0x7f000001" as IPv4: refuse such
    # spellings rather than guess what a resolver makes of them.
    if _NUMERIC_LABEL.match(labels[-1]):
        raise InvalidWebhookUrl("an IPv4 address must be written as four decimal numbers")
    return host


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def refused_because(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why the gateway will not call `address` (`"loopback"`, ...), or None if it may."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        inner = refused_because(embedded, allow_private=allow_private)
        return None if inner is None else f"{inner} (IPv4 {embedded} inside IPv6)"
    if allow_private:
        return None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not a public address"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, NAT64, 6to4, Teredo client)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


async def resolve_public(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order, if all may be called.

    Raises `UnresolvableHost` when there is none and `AddressRefused` naming the first
    refused address (one is enough: a name that also resolves privately is not public).
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        infos: list[tuple[Any, ...]] = await asyncio.get_running_loop().getaddrinfo(
            bare, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError):
        raise UnresolvableHost(bare) from None
    addresses: list[IPAddress] = []
    for family, *_, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        # An IPv6 link-local answer carries its zone ("fe80::1%eth0").
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvableHost(bare)
    for address in addresses:
        refusal = refused_because(address, allow_private=allow_private)
        if refusal is not None:
            raise AddressRefused(address, refusal)
    return addresses
