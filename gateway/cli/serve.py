"""`gateway serve`: run the three servers in one process."""

from __future__ import annotations

import argparse

from gateway.cli.errors import CliError
from gateway.logs import configure_logging
from gateway.runner import PortBindError
from gateway.settings import load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `serve` subcommand."""
    parser = sub.add_parser("serve", help="run the public and internal servers")
    parser.add_argument(
        "--migrate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="apply migrations at start (default: yes except in production)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    overrides = {} if args.migrate is None else {"run_migrations": args.migrate}
    settings = load_settings(**overrides)
    configure_logging(settings.log_level.value, settings.log_format)
    from gateway.embedded.errors import EmbeddedBackendError
    from gateway.serve import serve

    try:
        return serve(settings)
    except (PortBindError, EmbeddedBackendError) as exc:
        raise CliError(str(exc)) from exc
