"""`gateway workers list|command`: the worker registry and operator commands."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gateway.kit.cli_json import add_json_option, print_json_lines
from gateway.kit.cli_runner import add_audience, run_with_resources

if TYPE_CHECKING:
    from gateway.core.resources import Resources


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `workers` subcommand group."""
    parser = sub.add_parser("workers", help="list workers, or tell them to run/quiet/terminate")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="workers seen within WORKER_EXPIRY_S")
    add_audience(listing)
    add_json_option(listing, "worker")
    listing.set_defaults(handler=_list)

    command = actions.add_parser("command", help="set the command heartbeats answer")
    add_audience(command)
    command.add_argument(
        "command",
        choices=["run", "quiet", "terminate"],
        help="run: lease as usual; quiet: stop leasing; terminate: finish and exit",
    )
    target = command.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--worker",
        action="append",
        dest="workers",
        metavar="WORKER_ID",
        help="one worker (repeat for several)",
    )
    target.add_argument(
        "--all", action="store_true", help="every worker (clears per-worker commands)"
    )
    command.set_defaults(handler=_command)


def _list(args: argparse.Namespace) -> int:
    async def run(resources: Resources) -> int:
        from gateway.work.plane import WorkerPlane

        workers = await WorkerPlane(resources, args.audience).registry.workers()
        if args.json:
            print_json_lines(workers)
            return 0
        print(f"{'WORKER':<40} {'LAST SEEN':<33} {'COMMAND':<10} {'IN FLIGHT':<10} PLATFORMS")
        for w in workers:
            platforms = ",".join(w.get("platforms") or [])
            print(
                f"{w['worker_id']:<40} {w['last_seen']:<33} {w['command']:<10} "
                f"{w.get('in_flight', 0)!s:<10} {platforms}"
            )
        return 0

    return run_with_resources(run)


def _command(args: argparse.Namespace) -> int:
    async def run(resources: Resources) -> int:
        from gateway.work.plane import WorkerPlane

        registry = WorkerPlane(resources, args.audience).registry
        await registry.set_command(args.command, None if args.all else args.workers)
        target = "all workers" if args.all else ", ".join(args.workers)
        print(f"{args.command} -> {target} ({args.audience})")
        return 0

    return run_with_resources(run)
