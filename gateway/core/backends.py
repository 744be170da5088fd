"""Where Redis and PostgreSQL are: the configured servers, or embedded ones started here.

`gateway serve` and every operator command go through `backends`, so a command run on a
fresh machine talks to the same embedded servers (same data directory) as the gateway:
the running gateway's own, when one runs there, or servers started for the command.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import structlog

from gateway.core.resources import BackendUrls
from gateway.core.settings import Settings

log = structlog.get_logger("gateway.serve")


@contextlib.contextmanager
def backends(settings: Settings, *, attach: bool = False) -> Iterator[BackendUrls]:
    """Configured backends, or embedded child-process servers for the process lifetime.

    With `attach` (operator commands), a gateway already running embedded servers in the
    same data dir lends them instead: its lock would refuse a second set anyway.
    """
    if settings.redis_url is not None and settings.database_url is not None:
        yield BackendUrls(settings.redis_url, settings.database_url)
        return
    from gateway.embedded import EmbeddedBackends
    from gateway.embedded.state import running_backends

    if attach and (running := running_backends(settings.data_dir.resolve())) is not None:
        yield BackendUrls(running.redis_url, running.database_url)
        return

    started = time.perf_counter()
    with EmbeddedBackends(settings.data_dir.resolve()) as embedded:
        urls = embedded.start()
        log.warning(
            "embedded_mode",
            detail="single-node embedded mode: PostgreSQL and Redis run as child processes "
            "of this gateway; set REDIS_URL and DATABASE_URL for production",
            data_dir=str(settings.data_dir.resolve()),
            startup_ms=round((time.perf_counter() - started) * 1000),
        )
        yield BackendUrls(urls.redis_url, urls.database_url)
