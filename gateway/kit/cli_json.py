"""`--json`: the one machine-readable output shape of every command that has it.

JSON Lines on stdout: one compact JSON object per line, one line per item the command
lists (a route, a proxy, a key, a worker, a dead task), in the order the text output
shows them, and nothing else on stdout; an empty list prints nothing. Field names are
snake_case, times ISO 8601 strings, absent values `null`. Every line stands alone, so
`| head -n1`, `| wc -l`, `jq -c`, `grep` and `json.loads(line)` work on any command, and
a long list streams rather than arriving as one document.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any


def add_json_option(parser: argparse.ArgumentParser, item: str) -> None:
    """The `--json` flag, its help naming what one line holds (`item`)."""
    parser.add_argument(
        "--json", action="store_true", help=f"JSON Lines on stdout: one object per {item}"
    )


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def print_json_lines(items: Iterable[Mapping[str, Any]]) -> None:
    """Print each item as one compact JSON line."""
    for item in items:
        print(json.dumps(item, separators=(",", ":"), default=_default, ensure_ascii=False))
