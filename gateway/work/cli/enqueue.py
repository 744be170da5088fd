"""`gateway enqueue --audience parcel FILE.jsonl`: enqueue tasks from a file.

Every line is validated first; if any line is invalid nothing is enqueued and each bad
line is reported by number, so a half-applied file never needs untangling.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gateway.kit.cli_errors import CliError
from gateway.kit.cli_runner import add_audience, run_with_resources

if TYPE_CHECKING:
    from gateway.core.resources import Resources
    from gateway.work.models import TaskIn


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `enqueue` subcommand."""
    parser = sub.add_parser("enqueue", help="enqueue tasks from a JSON-lines file ('-' = stdin)")
    add_audience(parser)
    parser.add_argument("file", help="one task object per line")
    parser.set_defaults(handler=_run)


def _read(path: str) -> list[TaskIn]:
    from gateway.work.models import TaskIn

    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    tasks: list[TaskIn] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw: Any = json.loads(line)
            tasks.append(TaskIn.model_validate(raw))
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg})")
        except ValidationError as exc:
            fields = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(task)'}: {e['msg']}"
                for e in exc.errors(include_input=False, include_url=False)
            )
            problems.append(f"line {number}: {fields}")
    if problems:
        for p in problems:
            print(f"gateway: {p}", file=sys.stderr)
        raise CliError(f"{len(problems)} invalid line(s); nothing was enqueued", exit_code=2)
    return tasks


def _run(args: argparse.Namespace) -> int:
    try:
        tasks = _read(args.file)
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from exc

    async def run(resources: Resources) -> int:
        from gateway.work.plane import WorkerPlane

        plane = WorkerPlane(resources, args.audience)
        batch = resources.settings.enqueue_max_batch
        enqueued = duplicates = 0
        for i in range(0, len(tasks), batch):
            outcome = await plane.enqueue(tasks[i : i + batch])
            new = sum(outcome.new)
            enqueued += new
            duplicates += len(outcome.new) - new
        print(f"enqueued={enqueued} duplicates={duplicates}")
        return 0

    return run_with_resources(run)
