"""`gateway migrate`: apply Alembic migrations to the configured database."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `migrate` subcommand."""
    parser = sub.add_parser("migrate", help="apply database migrations")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from gateway.core.backends import backends
    from gateway.core.logs import configure_for
    from gateway.core.settings import load_settings
    from gateway.embedded.errors import EmbeddedBackendError
    from gateway.kit.cli_errors import CliError
    from gateway.kit.cli_failures import backend_failures_explained
    from gateway.migrations.runner import upgrade_to_head

    settings = load_settings()
    configure_for(settings, stream="stderr")

    try:
        with backend_failures_explained(settings), backends(settings, attach=True) as urls:
            upgrade_to_head(urls.database_url)
    except EmbeddedBackendError as exc:
        raise CliError(str(exc)) from exc
    return 0
