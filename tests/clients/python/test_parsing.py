"""The SDK's header and stream parsers on the gateway's documented forms (no server)."""

from __future__ import annotations

import httpx

from taxlien_gateway import Client, Retry
from taxlien_gateway._call import call
from taxlien_gateway._sse import FollowState, SseMessage, SseParser
from taxlien_gateway.ratelimit import parse_rate_limit, parse_retry_after
from taxlien_gateway.retry import RetryPolicy


def test_the_readme_rate_limit_headers_parse() -> None:
    found = parse_rate_limit(
        {
            "ratelimit-policy": '"burst";q=20;w=10, "daily";q=2000;w=86400',
            "ratelimit": '"burst";r=0;t=3, "daily";r=1987;t=40213',
        }
    )
    assert found is not None
    assert [(p.name, p.quota, p.window_s) for p in found.policies] == [
        ("burst", 20, 10),
        ("daily", 2000, 86400),
    ]
    assert found.remaining("daily") == 1987
    assert found.wait_s() == 3.0  # only the exhausted policy counts
    assert parse_rate_limit({}) is None


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("Fri, 04 Dec 2026 00:00:10 GMT", now=1796342400.0) == 10.0
    assert parse_retry_after("soon") is None


def test_a_429_without_retry_after_waits_for_the_exhausted_policy() -> None:
    response = httpx.Response(429, headers={"ratelimit": '"burst";r=0;t=2'})
    assert RetryPolicy().delay_after_response(1, response) == 2.0
    assert RetryPolicy(max_retries=1).delay_after_response(2, response) is None
    assert RetryPolicy().delay_after_response(1, httpx.Response(404)) is None


def test_the_parser_reads_events_as_eventsource_does() -> None:
    parser = SseParser()
    lines = [
        "retry: 2000",
        "",
        ": keep-alive",
        "id: 4",
        "event: job.progress",
        "data: {",
        "data: }",
        "",
    ]
    messages = [m for m in map(parser.feed, lines) if m is not None]
    assert messages == [SseMessage("job.progress", "{\n}", "4")]
    assert parser.retry_ms == 2000


def test_shutdown_keeps_the_last_id_and_the_retry_hint_paces_reconnects() -> None:
    state = FollowState(last_event_id="7")
    for line in ["event: shutdown", "retry: 500", 'data: {"reason":"shutdown"}', ""]:
        message = state.parser.feed(line)
        assert message is None or state.accept(message) is None
    assert state.last_event_id == "7"
    assert state.headers()["Last-Event-ID"] == "7"
    state.failures = 3
    assert state.reconnect_delay_s() == 2.0  # 0.5 s doubled per fruitless reconnect


def test_a_503_is_retried_after_its_retry_after_and_a_delete_is_not_resent() -> None:
    answers = [httpx.Response(503, headers={"retry-after": "0"}), httpx.Response(204)]
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers.pop(0)

    seen: list[Retry] = []
    http = httpx.Client(base_url="http://gateway.test", transport=httpx.MockTransport(handler))
    with http, Client(http_client=http, api_key="tlk_x", on_retry=seen.append) as gw:
        assert gw.send(call("POST", "/v1/things", None)) is None
    assert [(r.status, r.delay_s) for r in seen] == [(503, 0.0)]
    assert sent[0].headers["idempotency-key"] == sent[1].headers["idempotency-key"]

    read_error = httpx.ReadError("lost")
    policy = RetryPolicy()
    assert policy.delay_after_error(1, "DELETE", read_error) is None  # it may have acted
    assert policy.delay_after_error(1, "DELETE", httpx.ConnectError("refused")) is not None
    assert policy.delay_after_error(1, "POST", read_error) is not None  # same key: replayed
