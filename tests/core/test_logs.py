"""Secrets never reach the log, whatever the caller passes."""

from __future__ import annotations

import json

import pytest
import structlog

from gateway.core.logs import REDACTED, choose_format, configure_logging, redact_text
from gateway.core.settings import Environment, LogFormat


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("redis://:s3cret@cache:6379/0", "s3cret"),
        ("postgresql://app:pa55word@db:5432/gw", "pa55word"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
        ("proxy http://user:hunter2@10.0.0.1:3128 failed", "hunter2"),
        ('127.0.0.1:5 - "WebSocket /v1/ws?ticket=eyJ2.sig" [accepted]', "eyJ2.sig"),
        ("/v1/jobs/job_1/events?last_event_id=3&ticket=abc.def", "abc.def"),
        ("GET /v1/x?api_key=tlk_secret", "tlk_secret"),
    ],
)
def test_redact_text(text: str, secret: str) -> None:
    redacted = redact_text(text)
    assert secret not in redacted
    assert REDACTED in redacted


def test_log_lines_never_contain_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", LogFormat.JSON)
    log = structlog.get_logger("test")
    log.info(
        "connecting",
        url="redis://:topsecret@cache:6379",
        token="wkr_abcdef",
        headers={"X-API-Key": "key_live_123", "accept": "json"},
        password="pw",
        nested=[{"api_key": "k2"}],
    )
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    text = json.dumps(line)
    for secret in ("topsecret", "wkr_abcdef", "key_live_123", '"pw"', "k2"):
        assert secret not in text
    assert line["headers"]["accept"] == "json"
    assert line["event"] == "connecting"
    assert line["level"] == "info"


def test_console_format_renders_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", LogFormat.CONSOLE)
    structlog.get_logger("test").info("hello", token="secret-value")
    out = capsys.readouterr().out
    assert "hello" in out
    assert "secret-value" not in out
    configure_logging("info", LogFormat.JSON)


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("configured", "environment", "tty", "env", "expected"),
    [
        (None, Environment.DEVELOPMENT, True, {}, LogFormat.CONSOLE),
        (None, Environment.DEVELOPMENT, False, {}, LogFormat.JSON),
        (None, Environment.PRODUCTION, True, {}, LogFormat.JSON),
        (None, Environment.TEST, True, {}, LogFormat.JSON),
        (
            None,
            Environment.DEVELOPMENT,
            True,
            {"KUBERNETES_SERVICE_HOST": "10.0.0.1"},
            LogFormat.JSON,
        ),
        (None, Environment.DEVELOPMENT, True, {"container": "podman"}, LogFormat.JSON),
        (LogFormat.JSON, Environment.DEVELOPMENT, True, {}, LogFormat.JSON),
        (LogFormat.CONSOLE, Environment.PRODUCTION, False, {}, LogFormat.CONSOLE),
    ],
)
def test_log_format_follows_the_terminal_in_development_only(
    monkeypatch: pytest.MonkeyPatch,
    configured: LogFormat | None,
    environment: Environment,
    tty: bool,
    env: dict[str, str],
    expected: LogFormat,
) -> None:
    for name in ("KUBERNETES_SERVICE_HOST", "container"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert choose_format(configured, environment, _Stream(tty)) is expected  # type: ignore[arg-type]
