"""`gateway --help` and argument errors start without importing the server stack."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "redis", "fastapi", "pydantic_settings", "structlog", "httpx", "uvicorn")


def test_the_cli_parser_imports_none_of_the_stack() -> None:
    probe = (
        "import sys\n"
        "from gateway.cli.main import build_parser\n"
        "build_parser()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing the CLI parser pulled in: {out}"


def test_help_lists_every_capability_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gateway", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in (
        "serve",
        "migrate",
        "tokens",
        "enqueue",
        "workers",
        "dlq",
        "routing",
        "keys",
        "proxies",
    ):
        assert command in out
