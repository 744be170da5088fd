"""The `gateway` command line: one subcommand module per concern.

Exit codes: 0 success, 1 runtime failure (a port in use, a server died, a backend down),
2 invalid configuration or usage. Configuration errors print one line per bad setting,
named by its environment variable, and never a traceback; so do the backend states an
operator should expect (`gateway/kit/cli_failures.py`). Output for scripts goes to stdout,
logs and errors to stderr; a reader that closes the pipe early (`| head`) ends the
command quietly with exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from gateway.cli import commands
from gateway.kit.cli_errors import EXIT_FAILURE, EXIT_USAGE, CliError, describe_validation_error


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in commands.REGISTRY:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the chosen command, map failures to exit codes."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # inside the try: a closed pipe fails here, not at exit
    except BrokenPipeError:
        # `gateway ... | head` closed the pipe: the reader has what it wanted. Point stdout
        # at /dev/null so the interpreter's final flush does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except ValidationError as exc:
        for line in describe_validation_error(exc):
            print(f"gateway: configuration error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return exc.exit_code
    return code
