"""Run an operator command against the configured (or embedded) Redis and PostgreSQL.

Every command that needs the backends goes through `run_with_resources`, so they share
one start-up (settings, warnings-only logging to stderr: commands print their own output
to stdout), the running gateway's embedded servers when one runs in `DATA_DIR`, one
set of resources, and one map from errors to exit codes:

| what went wrong                                   | exit |
|---------------------------------------------------|------|
| invalid input (`InvalidInput`: a bad tier, a bad field) | 2 |
| any other gateway error (not found, backend down) | 1    |
| embedded backends could not start (or the extra is missing) | 1 |
| production on Redis without AOF (`REDIS_ALLOW_VOLATILE` unset) | 1 |
| not migrated, database missing, a backend unreachable (`gateway/kit/cli_failures.py`) | 1 |
| invalid settings (raised before, in `gateway.cli.main`) | 2 |

Heavy modules are imported inside the functions, so `gateway --help` and argument
errors do not pay for SQLAlchemy, redis-py or the apps.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from gateway.kit.cli_errors import EXIT_USAGE, CliError

if TYPE_CHECKING:
    from gateway.core.resources import BackendUrls, Resources
    from gateway.core.settings import Settings

T = TypeVar("T")
AUDIENCES = ("parcel", "party")


def add_audience(parser: argparse.ArgumentParser) -> None:
    """The `--audience parcel|party` option of worker-plane commands."""
    parser.add_argument("--audience", required=True, choices=AUDIENCES, help="worker port")


def run_with_resources(
    command: Callable[[Resources], Awaitable[T]],
    *,
    prepare: Callable[[Settings, BackendUrls], None] | None = None,
) -> T:
    """Open the shared resources, run `command`, map gateway errors to CLI errors.

    `prepare` runs (in a thread) once the backends are known and before the resources
    open: `gateway demo` migrates there, as `serve` would.
    """
    from gateway.core.backends import backends
    from gateway.core.errors import GatewayError, InvalidInput
    from gateway.core.logs import configure_for
    from gateway.core.redis_persistence import RedisPersistenceRefused
    from gateway.core.resources import open_resources
    from gateway.core.settings import LogLevel, load_settings
    from gateway.embedded.errors import EmbeddedBackendError
    from gateway.kit.cli_failures import backend_failures_explained

    settings = load_settings()
    # Logs to stderr: stdout carries only what the command prints, for scripts.
    configure_for(settings, level=LogLevel.WARNING.value, stream="stderr")

    async def main() -> T:
        with backends(settings, attach=True) as urls:
            if prepare is not None:
                await asyncio.to_thread(prepare, settings, urls)
            async with open_resources(settings, urls) as resources:
                return await command(resources)

    try:
        with backend_failures_explained(settings):
            return asyncio.run(main())
    except InvalidInput as exc:
        messages = "; ".join(str(e.get("msg")) for e in exc.extra.get("errors", []))
        raise CliError(messages or exc.detail, EXIT_USAGE) from exc
    except GatewayError as exc:
        raise CliError(exc.detail) from exc
    except EmbeddedBackendError as exc:  # no backends configured and none could start
        raise CliError(str(exc)) from exc
    except RedisPersistenceRefused as exc:  # production on Redis without AOF
        raise CliError(str(exc)) from exc
