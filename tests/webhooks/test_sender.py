"""The sender against real local receivers: what one attempt reports, and what it refuses."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from gateway.webhooks.sender import WebhookSender
from gateway.webhooks.signing import new_message_id, new_secret, sign
from gateway.webhooks.ssrf import IPAddress
from tests.support.webhook_receiver import BIG_BYTES, WebhookReceiver, receiver_port, tls_files

BODY = json.dumps({"type": "job.completed", "data": {"id": "job_1"}}).encode()
SECRET = new_secret()
TIMEOUT_S = 10.0
EXCERPT = 1024


def _signed() -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        **sign(new_message_id(), int(time.time()), BODY, [SECRET]),
    }


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    """A sender that may call loopback receivers (WEBHOOK_ALLOW_PRIVATE_NETWORKS)."""
    async with WebhookSender(allow_private=True) as s:
        yield s


async def test_a_200_is_a_success_and_the_receiver_verifies_the_signature(
    receiver: WebhookReceiver, sender: WebhookSender
) -> None:
    headers = _signed()
    attempt = await sender.send(
        receiver.url("/ok"), headers, BODY, timeout_s=TIMEOUT_S, excerpt_bytes=EXCERPT
    )

    assert (attempt.status, attempt.error, attempt.excerpt) == (200, None, "thanks")
    assert attempt.succeeded
    assert attempt.latency_ms > 0
    [got] = receiver.received
    assert got.body == BODY
    assert got.headers["webhook-id"] == headers["webhook-id"]
    assert got.headers["content-type"] == "application/json"
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert Webhook(SECRET).verify(got.body, got.headers) == json.loads(BODY)


@pytest.mark.parametrize(
    ("path", "status", "excerpt"),
    [("/fail", 500, "receiver broke"), ("/gone", 410, "endpoint removed")],
)
async def test_an_error_status_is_a_failed_attempt_with_the_answer(
    receiver: WebhookReceiver, sender: WebhookSender, path: str, status: int, excerpt: str
) -> None:
    attempt = await sender.send(
        receiver.url(path), _signed(), BODY, timeout_s=TIMEOUT_S, excerpt_bytes=EXCERPT
    )

    assert (attempt.status, attempt.error, attempt.excerpt) == (status, None, excerpt)
    assert not attempt.succeeded


async def test_a_receiver_that_does_not_answer_in_time_is_a_timeout(
    receiver: WebhookReceiver, sender: WebhookSender
) -> None:
    # /slow holds the request until the receiver stops: no machine is fast enough to
    # answer, so the short deadline always passes first.
    attempt = await sender.send(
        receiver.url("/slow"), _signed(), BODY, timeout_s=0.5, excerpt_bytes=EXCERPT
    )

    assert (attempt.status, attempt.error) == (None, "timeout")
    assert not attempt.succeeded


@pytest.mark.parametrize(
    "to", ["http://127.0.0.1:{port}/ok", "http://169.254.169.254/latest/meta-data/"]
)
async def test_a_redirect_is_not_followed(
    receiver: WebhookReceiver, sender: WebhookSender, to: str
) -> None:
    target = to.format(port=receiver.port)
    url = receiver.url("/redirect") + "?to=" + target
    attempt = await sender.send(url, _signed(), BODY, timeout_s=TIMEOUT_S, excerpt_bytes=EXCERPT)

    assert (attempt.status, attempt.error) == (302, "redirect not followed")
    assert not attempt.succeeded
    assert [r.path for r in receiver.received] == ["/redirect"]


async def test_a_big_answer_is_cut_to_the_excerpt(
    receiver: WebhookReceiver, sender: WebhookSender
) -> None:
    attempt = await sender.send(
        receiver.url("/big"), _signed(), BODY, timeout_s=TIMEOUT_S, excerpt_bytes=100
    )

    assert (attempt.status, attempt.error) == (200, None)
    assert attempt.excerpt == "x" * 100
    assert BIG_BYTES > 100
    nothing = await sender.send(
        receiver.url("/big"), _signed(), BODY, timeout_s=TIMEOUT_S, excerpt_bytes=0
    )
    assert (nothing.status, nothing.excerpt) == (200, "")


async def test_an_excerpt_is_text_a_database_can_hold(
    receiver: WebhookReceiver, sender: WebhookSender
) -> None:
    attempt = await sender.send(
        receiver.url("/binary"), _signed(), BODY, timeout_s=TIMEOUT_S, excerpt_bytes=EXCERPT
    )
    assert (attempt.status, attempt.excerpt) == (200, "ok\ufffd\ufffdend")


async def test_an_answer_cut_short_keeps_its_status_and_what_arrived(
    receiver: WebhookReceiver, sender: WebhookSender
) -> None:
    attempt = await sender.send(
        receiver.url("/cut"), _signed(), BODY, timeout_s=TIMEOUT_S, excerpt_bytes=EXCERPT
    )
    assert (attempt.status, attempt.error, attempt.excerpt) == (200, None, "partial")


async def test_the_next_checked_address_is_tried_when_one_refuses(
    receiver: WebhookReceiver,
) -> None:
    # 127.0.0.2 is loopback too, but the receiver listens on 127.0.0.1 only.
    async def two_addresses(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.2"), ipaddress.ip_address("127.0.0.1")]

    async with WebhookSender(allow_private=True, resolver=two_addresses) as s:
        attempt = await s.send(
            receiver.url("/ok", host="receiver.test"),
            _signed(),
            BODY,
            timeout_s=TIMEOUT_S,
            excerpt_bytes=EXCERPT,
        )
    assert (attempt.status, attempt.error) == (200, None)
    assert [r.headers["host"] for r in receiver.received] == [f"receiver.test:{receiver.port}"]


async def test_nobody_listening_is_connection_refused(sender: WebhookSender) -> None:
    port = receiver_port()  # reserved for this process, nothing listens on it
    attempt = await sender.send(
        f"http://127.0.0.1:{port}/ok", _signed(), BODY, timeout_s=TIMEOUT_S, excerpt_bytes=EXCERPT
    )

    assert (attempt.status, attempt.error) == (None, "connection refused")


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("127.0.0.1", "address refused: 127.0.0.1 is loopback"),
        ("localhost", "is loopback"),
        ("[::ffff:127.0.0.1]", "loopback (IPv4 127.0.0.1 inside IPv6)"),
    ],
)
async def test_without_allow_private_a_loopback_receiver_is_never_called(
    receiver: WebhookReceiver, host: str, says: str
) -> None:
    async with WebhookSender(allow_private=False) as strict:
        attempt = await strict.send(
            receiver.url("/ok", host=host),
            _signed(),
            BODY,
            timeout_s=TIMEOUT_S,
            excerpt_bytes=EXCERPT,
        )

    assert attempt.status is None
    assert attempt.error is not None
    assert says in attempt.error
    assert attempt.error.startswith("address refused: ")
    assert receiver.received == []


async def test_a_bad_url_is_a_failed_attempt_not_an_exception(sender: WebhookSender) -> None:
    attempt = await sender.send(
        "ftp://hooks.example.com/x", _signed(), BODY, timeout_s=TIMEOUT_S, excerpt_bytes=EXCERPT
    )
    assert attempt.status is None
    assert attempt.error is not None
    assert "scheme" in attempt.error
    async with WebhookSender(allow_private=True, require_https=True) as https_only:
        plain = await https_only.send(
            "http://hooks.example.com/x",
            _signed(),
            BODY,
            timeout_s=TIMEOUT_S,
            excerpt_bytes=EXCERPT,
        )
    assert plain.error == "the scheme must be https"


class _RebindingDns:
    """An attacker's DNS: the first answer for a name is one address, later ones another."""

    def __init__(self, real: Any, name: str, answers: list[str]) -> None:
        self.real, self.name, self.answers = real, name, answers
        self.asked = 0

    async def __call__(self, host: str, port: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host != self.name:
            return list(await self.real(host, port, **kwargs))
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, int(port)))]


async def test_the_sender_connects_to_the_address_it_checked_with_the_hostname(
    receiver: WebhookReceiver, sender: WebhookSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second answer would be somewhere else (TEST-NET, unroutable): a sender that
    # resolved again to connect would time out instead of reaching the receiver.
    loop = asyncio.get_running_loop()
    dns = _RebindingDns(loop.getaddrinfo, "receiver.test", ["127.0.0.1", "192.0.2.1"])
    monkeypatch.setattr(loop, "getaddrinfo", dns)

    attempt = await sender.send(
        receiver.url("/ok", host="receiver.test"),
        _signed(),
        BODY,
        timeout_s=TIMEOUT_S,
        excerpt_bytes=EXCERPT,
    )

    assert (attempt.status, attempt.error) == (200, None)
    assert dns.asked == 1
    [got] = receiver.received
    assert got.headers["host"] == f"receiver.test:{receiver.port}"


async def test_a_name_resolving_to_loopback_is_refused_before_connecting(
    receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    monkeypatch.setattr(
        loop,
        "getaddrinfo",
        _RebindingDns(loop.getaddrinfo, "hooks.attacker.example", ["127.0.0.1"]),
    )
    async with WebhookSender(allow_private=False) as strict:
        attempt = await strict.send(
            receiver.url("/ok", host="hooks.attacker.example"),
            _signed(),
            BODY,
            timeout_s=TIMEOUT_S,
            excerpt_bytes=EXCERPT,
        )

    assert attempt.error == "address refused: 127.0.0.1 is loopback"
    assert receiver.received == []


async def _resolve_to_loopback(host: str, port: int) -> list[IPAddress]:
    """A resolver for names the TLS tests' certificates are made for."""
    return [ipaddress.ip_address("127.0.0.1")]


async def test_tls_uses_the_hostname_for_sni_and_the_certificate(tmp_path: Path) -> None:
    tls = tls_files(tmp_path, "receiver.test")
    server = WebhookReceiver(tls=tls)
    server.start()
    try:
        async with WebhookSender(
            allow_private=True, verify=tls.ca_context(), resolver=_resolve_to_loopback
        ) as s:
            attempt = await s.send(
                server.url("/ok", host="receiver.test"),
                _signed(),
                BODY,
                timeout_s=TIMEOUT_S,
                excerpt_bytes=EXCERPT,
            )
    finally:
        server.stop()

    assert (attempt.status, attempt.error, attempt.excerpt) == (200, None, "thanks")
    [got] = server.received
    assert got.headers["host"] == f"receiver.test:{server.port}"
    assert Webhook(SECRET).verify(got.body, got.headers)


async def test_tls_refuses_a_certificate_for_another_name(tmp_path: Path) -> None:
    tls = tls_files(tmp_path, "other.test")
    server = WebhookReceiver(tls=tls)
    server.start()
    try:
        async with WebhookSender(
            allow_private=True, verify=tls.ca_context(), resolver=_resolve_to_loopback
        ) as s:
            attempt = await s.send(
                server.url("/ok", host="receiver.test"),
                _signed(),
                BODY,
                timeout_s=TIMEOUT_S,
                excerpt_bytes=EXCERPT,
            )
    finally:
        server.stop()

    assert attempt.status is None
    assert attempt.error is not None
    assert attempt.error.startswith("tls: ")
    assert "not valid for 'receiver.test'" in attempt.error
    assert server.received == []
