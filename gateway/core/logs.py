"""Structured logging: one JSON object per line, secrets scrubbed before rendering.

The format follows `LOG_FORMAT`; left unset, a person at a terminal in development gets
console lines and everything else (pipes, files, containers, production) gets JSON, so
log collectors never have to guess. `gateway serve` logs to stdout like any container
process; operator commands log to stderr, keeping stdout for the output scripts read.

structlog renders our own events; the stdlib loggers (uvicorn, SQLAlchemy, alembic) are
routed through the same processor chain so operators get one format. Redaction runs as
a processor on every event, so a careless `log.info(..., token=...)` still never writes
the secret: keys that look like credentials are masked, and credentials embedded in URLs
(`redis://:pw@host`) are stripped from any string value.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal, TextIO

import structlog

from gateway.core.observability.log_context import merge_log_fields
from gateway.core.settings import Environment, LogFormat, Settings

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[-_]?key|authorization|cookie|credential|private[-_]?key)",
    re.IGNORECASE,
)
# scheme://user:password@host -> scheme://user:[redacted]@host (also bare ://:pw@)
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")
# Credentials in a URL's query: stream tickets (`/v1/ws?ticket=...`, which uvicorn's
# WebSocket line logs with its query), and keys or tokens a client put there anyway.
_QUERY_CREDENTIAL = re.compile(
    r"(?i)([?&](?:ticket|token|access_token|id_token|api_key|apikey|key)=)[^&\s\"']+"
)


def redact_text(value: str) -> str:
    """Strip credentials embedded in URLs and bearer tokens from free text."""
    value = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", value)
    value = _QUERY_CREDENTIAL.sub(lambda m: f"{m.group(1)}{REDACTED}", value)
    return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value) if ("://" in value or " " in value or "=" in value) else value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else _redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor that masks credential-looking fields and URL passwords."""
    for key in list(event_dict):
        if _SECRET_KEY.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


def _drop_color_message(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # uvicorn attaches an ANSI-coloured copy of each message for its own formatter.
    event_dict.pop("color_message", None)
    return event_dict


# uvicorn's own start and stop lines, said once per server (three times per process);
# the gateway's `listening`, `ready` and `stopped` events say the same once.
_UVICORN_LIFECYCLE = (
    "Started server process",
    "Finished server process",
    "Waiting for application startup.",
    "Application startup complete.",
    "Waiting for application shutdown.",
    "Application shutdown complete.",
    "Shutting down",
    "Uvicorn running on",
)


def _not_uvicorn_lifecycle(record: logging.LogRecord) -> bool:
    return not (
        record.levelno <= logging.INFO
        and isinstance(record.msg, str)
        and record.msg.startswith(_UVICORN_LIFECYCLE)
    )


Stream = Literal["stdout", "stderr"]


class _StreamHandler(logging.StreamHandler[Any]):
    """Writes to whatever `sys.stdout` (or `sys.stderr`) is at emit time (test capture
    swaps it)."""

    def __init__(self, name: Stream) -> None:
        self._which = name  # not `_name`: logging.Handler keeps its own name there
        super().__init__(self.stream)

    @property
    def stream(self) -> Any:
        return sys.stderr if self._which == "stderr" else sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def in_container() -> bool:
    """Whether this process runs as a deployed container (Kubernetes, Podman).

    Our image and compose file set `LOG_FORMAT=json` (and production) themselves. Docker's
    `/.dockerenv` is deliberately not a sign: dev containers (Codespaces, a shell in an
    image) are development terminals, where console lines are what a person wants.
    """
    return "KUBERNETES_SERVICE_HOST" in os.environ or bool(
        os.environ.get("container")  # noqa: SIM112 - podman and systemd-nspawn spell it so
    )


def choose_format(
    configured: LogFormat | None, environment: Environment, stream: TextIO
) -> LogFormat:
    """`LOG_FORMAT` when set; else console for development at a terminal, JSON otherwise."""
    if configured is not None:
        return configured
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        tty = False
    if environment is Environment.DEVELOPMENT and tty and not in_container():
        return LogFormat.CONSOLE
    return LogFormat.JSON


def configure_logging(
    level: str,
    fmt: LogFormat | None,
    *,
    environment: Environment = Environment.PRODUCTION,
    stream: Stream = "stdout",
) -> LogFormat:
    """Configure structlog and the stdlib root logger once per process; returns the format
    chosen (`fmt`, or the automatic choice when `fmt` is None)."""
    handler = _StreamHandler(stream)
    fmt = choose_format(fmt, environment, handler.stream)
    shared: list[structlog.types.Processor] = [
        merge_log_fields,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: structlog.types.Processor
    if fmt is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)

    structlog.configure(
        processors=[
            # Drop events below the level before any other processor runs, so quiet
            # debug lines on the hot path cost almost nothing.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), _drop_color_message, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ],
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn installs its own handlers when given a log config; we pass none and let
    # its records propagate to the root handler above. Its access log is replaced by our
    # request log, which knows the route template and request id.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    uvicorn_error = logging.getLogger("uvicorn.error")
    uvicorn_error.filters[:] = [f for f in uvicorn_error.filters if f is not _not_uvicorn_lifecycle]
    uvicorn_error.addFilter(_not_uvicorn_lifecycle)
    logging.getLogger("uvicorn.access").disabled = True
    # Alembic announces every plugin it loads at info; keep only the migrations it runs.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").setLevel(level.upper())
    return fmt


def configure_for(settings: Settings, *, level: str | None = None, stream: Stream) -> LogFormat:
    """`configure_logging` with the settings' level, format and environment."""
    return configure_logging(
        level or settings.log_level.value,
        settings.log_format,
        environment=settings.environment,
        stream=stream,
    )
