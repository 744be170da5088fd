"""The SSRF guard: which webhook URLs are accepted and which addresses may be called."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from gateway.webhooks.ssrf import (
    AddressRefused,
    InvalidWebhookUrl,
    UnresolvableHost,
    check_url,
    resolve_public,
)


def _public(url: str, *, require_https: bool = False) -> str:
    return check_url(url, allow_private=False, require_https=require_https)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("https://hooks.example.com/in", "https://hooks.example.com/in"),
        ("HTTPS://Hooks.Example.COM:443/In?a=1&b=2", "https://hooks.example.com/In?a=1&b=2"),
        ("http://hooks.example.com:80", "http://hooks.example.com/"),
        ("https://hooks.example.com:8443/x", "https://hooks.example.com:8443/x"),
        ("https://hooks.example.com./x", "https://hooks.example.com/x"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("https://8.8.8.8/hook", "https://8.8.8.8/hook"),
        ("https://[2001:4860:4860:0::8888]:8443/", "https://[2001:4860:4860::8888]:8443/"),
    ],
)
def test_a_good_url_is_accepted_and_normalised(url: str, normalised: str) -> None:
    assert _public(url) == normalised


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://hooks.example.com/in", "scheme"),
        ("hooks.example.com/in", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("https:///in", "no host"),
        ("https://user:pw@hooks.example.com/in", "user information"),
        ("https://token@hooks.example.com/in", "user information"),
        ("https://hooks.example.com/in#frag", "fragment"),
        ("https://hooks.example.com:0/in", "port"),
        ("https://hooks.example.com:70000/in", "port"),
        ("https://hooks.example.com:25/in", "port 25"),
        ("https://hooks.example.com:x/in", "port"),
        ("https://hooks.example.com/" + "a" * 2048, "2048"),
        ("https://hooks.example.com/a b", "whitespace"),
        ("https://hooks.example.com\\@evil.example/", "backslash"),
        ("https://hooks_example.com/", "valid name"),
        ("https://hooks..example.com/", "valid name"),
        ("http://2130706433/", "four decimal numbers"),
        ("http://127.1/", "four decimal numbers"),
        ("http://0x7f.0.0.1/", "four decimal numbers"),
    ],
)
def test_a_malformed_url_is_refused_naming_the_url_field(url: str, says: str) -> None:
    with pytest.raises(InvalidWebhookUrl) as caught:
        _public(url)
    assert says in caught.value.reason
    assert caught.value.status == 422
    assert caught.value.extra["errors"][0]["loc"] == ["body", "url"]


def test_http_is_refused_when_https_is_required() -> None:
    assert _public("http://hooks.example.com/") == "http://hooks.example.com/"
    with pytest.raises(InvalidWebhookUrl, match="must be https"):
        _public("http://hooks.example.com/", require_https=True)
    assert _public("https://hooks.example.com/", require_https=True)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1/", "127.0.0.1 is loopback"),
        ("http://127.8.9.10:8080/", "127.8.9.10 is loopback"),
        ("http://[::1]/", "::1 is loopback"),
        ("http://10.1.2.3/", "10.1.2.3 is private"),
        ("http://172.16.0.1/", "172.16.0.1 is private"),
        ("http://172.31.255.254/", "172.31.255.254 is private"),
        ("http://192.168.1.1/", "192.168.1.1 is private"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254 is a cloud metadata address"),
        ("http://100.100.100.200/", "100.100.100.200 is a cloud metadata address"),
        ("http://169.254.1.1/", "169.254.1.1 is link-local"),
        ("http://[fe80::1]/", "fe80::1 is link-local"),
        ("http://[fc00::1]/", "fc00::1 is private"),
        ("http://0.0.0.0/", "0.0.0.0 is unspecified"),
        ("http://[::]/", ":: is unspecified"),
        ("http://224.0.0.1/", "224.0.0.1 is multicast"),
        ("http://240.0.0.1/", "240.0.0.1 is"),
        ("http://100.64.0.1/", "100.64.0.1 is not a public address"),
        ("http://[::ffff:127.0.0.1]/", "loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata address"),
        ("http://[64:ff9b::10.0.0.1]/", "private (IPv4 10.0.0.1 inside IPv6)"),
        ("http://[2002:7f00:1::]/", "loopback (IPv4 127.0.0.1 inside IPv6)"),
    ],
)
def test_a_literal_address_that_is_not_public_is_refused(url: str, says: str) -> None:
    with pytest.raises(AddressRefused) as caught:
        _public(url)
    assert says in caught.value.reason
    assert caught.value.reason.startswith("address refused: ")
    assert caught.value.extra["errors"][0]["loc"] == ["body", "url"]


def test_allow_private_accepts_private_addresses_but_never_metadata() -> None:
    assert check_url("http://127.0.0.1:9000/x", allow_private=True, require_https=False) == (
        "http://127.0.0.1:9000/x"
    )
    assert check_url("http://10.0.0.5/", allow_private=True, require_https=False)
    for url in ("http://169.254.169.254/", "http://[::ffff:169.254.169.254]/"):
        with pytest.raises(AddressRefused, match="cloud metadata"):
            check_url(url, allow_private=True, require_https=False)


async def test_localhost_resolves_to_loopback_and_is_refused() -> None:
    # Real resolution of a real name: every system maps localhost to loopback.
    with pytest.raises(AddressRefused, match=r"is loopback"):
        await resolve_public("localhost", 443, allow_private=False)


async def test_localhost_is_allowed_with_allow_private() -> None:
    addresses = await resolve_public("localhost", 443, allow_private=True)
    assert addresses
    assert all(a.is_loopback for a in addresses)


async def test_a_literal_public_address_resolves_to_itself() -> None:
    assert await resolve_public("8.8.8.8", 443, allow_private=False) == [
        ipaddress.ip_address("8.8.8.8")
    ]
    assert await resolve_public("[2001:4860:4860::8888]", 443, allow_private=False) == [
        ipaddress.ip_address("2001:4860:4860::8888")
    ]


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    # .invalid never resolves (RFC 6761).
    with pytest.raises(UnresolvableHost, match="does not resolve"):
        await resolve_public("no-such-host.invalid", 443, allow_private=False)


class _FakeDns:
    """Answers getaddrinfo for chosen names (what an attacker's DNS server would say)."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers

    async def __call__(self, host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out: list[tuple[Any, ...]] = []
        for a in self.answers[host]:
            if ":" in a:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)))
        return out


@pytest.fixture
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> _FakeDns:
    """The running loop's resolver replaced: only the names a test sets resolve."""
    dns = _FakeDns({})
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", dns)
    return dns


async def test_a_public_name_returns_all_its_addresses(fake_dns: _FakeDns) -> None:
    fake_dns.answers["hooks.example.com"] = [
        "93.184.215.14",
        "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
        "93.184.215.14",
    ]
    addresses = await resolve_public("hooks.example.com", 443, allow_private=False)
    assert [str(a) for a in addresses] == [
        "93.184.215.14",
        "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    ]


@pytest.mark.parametrize(
    ("answers", "says"),
    [
        (["127.0.0.1"], "address refused: 127.0.0.1 is loopback"),
        (["10.0.0.7"], "address refused: 10.0.0.7 is private"),
        (["169.254.169.254"], "169.254.169.254 is a cloud metadata address"),
        (["::ffff:192.168.0.1"], "private (IPv4 192.168.0.1 inside IPv6)"),
        # One refused address among public ones refuses the name: the connection could
        # go to any of them.
        (["93.184.215.14", "192.168.0.9"], "192.168.0.9 is private"),
        (["fe80::1%eth0"], "fe80::1 is link-local"),
    ],
)
async def test_a_name_resolving_to_a_refused_address_is_refused(
    fake_dns: _FakeDns, answers: list[str], says: str
) -> None:
    fake_dns.answers["rebind.attacker.example"] = answers
    with pytest.raises(AddressRefused) as caught:
        await resolve_public("rebind.attacker.example", 443, allow_private=False)
    assert says in caught.value.reason


async def test_allow_private_resolves_a_name_to_a_private_address(fake_dns: _FakeDns) -> None:
    fake_dns.answers["receiver.internal"] = ["10.0.0.7"]
    assert await resolve_public("receiver.internal", 443, allow_private=True) == [
        ipaddress.ip_address("10.0.0.7")
    ]
