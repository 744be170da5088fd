"""`gateway serve`: run the three servers in one process."""

from __future__ import annotations

import argparse

from gateway.kit.cli_errors import CliError


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
    from gateway.core.logs import configure_for
    from gateway.core.redis_persistence import RedisPersistenceRefused
    from gateway.core.settings import load_settings
    from gateway.embedded.errors import EmbeddedBackendError
    from gateway.kit.cli_failures import backend_failures_explained
    from gateway.process.runner import PortBindError
    from gateway.process.serve import serve

    overrides = {} if args.migrate is None else {"run_migrations": args.migrate}
    settings = load_settings(**overrides)
    log_format = configure_for(settings, stream="stdout")

    try:
        with backend_failures_explained(settings):
            return serve(settings, log_format=log_format)
    except (PortBindError, EmbeddedBackendError, RedisPersistenceRefused) as exc:
        raise CliError(str(exc)) from exc
