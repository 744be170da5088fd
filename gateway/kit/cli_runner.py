"""Run an async operator command against the configured Redis and PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from gateway.core.errors import GatewayError
from gateway.core.settings import LogLevel, load_settings
from gateway.kit.cli_errors import CliError

if TYPE_CHECKING:
    from gateway.core.resources import Resources

AUDIENCES = ("parcel", "party")


def add_audience(parser: argparse.ArgumentParser) -> None:
    """The `--audience parcel|party` option of worker-plane commands."""
    parser.add_argument("--audience", required=True, choices=AUDIENCES, help="worker port")


def run_with_resources(command: Callable[[Resources], Awaitable[int]]) -> int:
    """Open the shared resources, run `command`, map gateway errors to CLI errors."""
    # Imported here so `gateway --help` and `gateway serve` do not pay for them.
    from gateway.core.logs import configure_logging
    from gateway.core.resources import open_resources
    from gateway.process.serve import backends

    settings = load_settings()
    # Operator commands print their own output; only warnings go to the log.
    configure_logging(LogLevel.WARNING.value, settings.log_format)

    async def main() -> int:
        with backends(settings) as urls:
            async with open_resources(settings, urls) as resources:
                return await command(resources)

    try:
        return asyncio.run(main())
    except GatewayError as exc:
        raise CliError(exc.detail) from exc
