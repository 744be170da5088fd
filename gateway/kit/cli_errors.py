"""Errors the CLI reports as one line, and settings errors named by variable."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

EXIT_FAILURE = 1
EXIT_USAGE = 2  # bad arguments, input or settings


class CliError(Exception):
    """A failure the CLI prints as `gateway: <message>` with an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One line per invalid setting, naming the environment variable, without its value."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(p) for p in error["loc"] if p != "__root__"]
        msg = error["msg"].removeprefix("Value error, ")
        lines.append(f"{loc[0].upper()}: {msg}" if loc else msg)
    return lines
