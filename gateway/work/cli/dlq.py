"""`gateway dlq list|requeue|purge --audience ...`: dead-lettered tasks."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gateway.audit.actor import cli_actor
from gateway.kit.cli_json import add_json_option, print_json_lines
from gateway.kit.cli_runner import add_audience, run_with_resources

if TYPE_CHECKING:
    from gateway.core.resources import Resources
    from gateway.work.plane import WorkerPlane


def _target(parser: argparse.ArgumentParser) -> None:
    add_audience(parser)
    parser.add_argument("--platform", help="only this platform")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--task-id",
        action="append",
        dest="task_ids",
        metavar="TASK_ID",
        help="one dead task (repeat for several)",
    )
    which.add_argument("--all", action="store_true", help="every dead task (of --platform)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `dlq` subcommand group."""
    parser = sub.add_parser("dlq", help="list, requeue or purge dead-lettered tasks")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="dead tasks with their error history")
    add_audience(listing)
    listing.add_argument("--platform", help="only this platform")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    add_json_option(listing, "dead task")
    listing.set_defaults(handler=_list)

    requeue = actions.add_parser("requeue", help="back to ready with a fresh attempt budget")
    _target(requeue)
    requeue.set_defaults(handler=_requeue)

    purge = actions.add_parser("purge", help="delete dead tasks for good")
    _target(purge)
    purge.set_defaults(handler=_purge)


def _list(args: argparse.Namespace) -> int:
    async def run(resources: Resources) -> int:
        from gateway.work.plane import WorkerPlane

        rows = await WorkerPlane(resources, args.audience).dead_letters.list(
            args.platform, args.limit
        )
        if args.json:
            print_json_lines(rows)
            return 0
        print(f"{'TASK ID':<34} {'PLATFORM':<16} {'ATTEMPT':<8} {'DEAD AT':<33} KEY / LAST ERROR")
        for row in rows:
            last = row["errors"][-1]["message"] if row["errors"] else "-"
            print(
                f"{row['task_id']:<34} {row['platform']:<16} {row['attempt']!s:<8} "
                f"{row['dead_at']:<33} {row['key']} / {last}"
            )
        return 0

    return run_with_resources(run)


async def _ids(plane: WorkerPlane, args: argparse.Namespace) -> list[str]:
    if args.task_ids:
        return list(args.task_ids)
    return await plane.dead_letters.ids(args.platform)


def _requeue(args: argparse.Namespace) -> int:
    async def run(resources: Resources) -> int:
        from gateway.work.plane import WorkerPlane

        plane = WorkerPlane(resources, args.audience)
        result = await plane.dead_letters.requeue(await _ids(plane, args), actor=cli_actor())
        print(f"requeued={result.requeued} dropped_as_duplicate={result.dropped}")
        return 0

    return run_with_resources(run)


def _purge(args: argparse.Namespace) -> int:
    async def run(resources: Resources) -> int:
        from gateway.work.plane import WorkerPlane

        plane = WorkerPlane(resources, args.audience)
        purged = await plane.dead_letters.purge(await _ids(plane, args), actor=cli_actor())
        print(f"purged={purged}")
        return 0

    return run_with_resources(run)
