"""Structured logging: one JSON object per line, secrets scrubbed before rendering.

structlog renders our own events; the stdlib loggers (uvicorn, SQLAlchemy, alembic) are
routed through the same processor chain so operators get one format. Redaction runs as
a processor on every event, so a careless `log.info(..., token=...)` still never writes
the secret: keys that look like credentials are masked, and credentials embedded in URLs
(`redis://:pw@host`) are stripped from any string value.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from gateway.core.observability.log_context import merge_log_fields
from gateway.core.settings import LogFormat

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


class _StdoutHandler(logging.StreamHandler[Any]):
    """Writes to whatever `sys.stdout` is at emit time (test capture swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Configure structlog and the stdlib root logger once per process."""
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
    handler = _StdoutHandler()
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
    logging.getLogger("uvicorn.access").disabled = True
    # Alembic announces every plugin it loads at info; keep only the migrations it runs.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").setLevel(level.upper())
