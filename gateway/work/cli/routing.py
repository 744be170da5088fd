"""`gateway routing show|set|drain`: Celery routes, their runtime shares and draining a
route's tasks back to native (the same service as `/v1/admin/routing`)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gateway.audit.actor import cli_actor
from gateway.kit.cli_json import add_json_option, print_json_lines
from gateway.kit.cli_runner import run_with_resources

if TYPE_CHECKING:
    from gateway.core.resources import Resources


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `routing` subcommand group."""
    parser = sub.add_parser("routing", help="show or change Celery routing shares")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    show = actions.add_parser("show", help="routes, the share in force, recent changes")
    add_json_option(show, "route, with its recent share changes")
    show.set_defaults(handler=_show)

    change = actions.add_parser("set", help="set a route's share (0.0 to 1.0)")
    change.add_argument("route", help="route id, e.g. parcel/miami_dade")
    change.add_argument("share", type=float, help="0.0 (all native) to 1.0 (all Celery)")
    change.set_defaults(handler=_set)

    drain = actions.add_parser(
        "drain", help="send a route's tasks back to native (e.g. a route removed)"
    )
    drain.add_argument("route", help="route id, configured or removed, e.g. parcel/miami_dade")
    drain.set_defaults(handler=_drain)


def _show(args: argparse.Namespace) -> int:
    async def run(resources: Resources) -> int:
        from gateway.work.plane import routing_service

        service = routing_service(resources)
        views = await service.show()
        history = await service.history()
        if args.json:
            print_json_lines(
                {
                    "id": v.route.id,
                    "task": v.route.task,
                    "queue": v.route.queue,
                    "configured_share": v.route.share,
                    "share": v.share,
                    "set_by": v.set_by,
                    "set_at": v.set_at,
                    "history": [vars(e) for e in history if e.route == v.route.id],
                }
                for v in views
            )
            return 0
        if not views:
            print("no Celery routes (CELERY_ROUTES is empty): every task is native")
            return 0
        print(f"{'ROUTE':<36} {'SHARE':>6} {'CONFIG':>6}  {'TASK':<24} {'QUEUE':<20} SET BY")
        for v in views:
            print(
                f"{v.route.id:<36} {v.share:>6.3f} {v.route.share:>6.3f}  {v.route.task:<24} "
                f"{v.route.queue:<20} {v.set_by or '-'} {v.set_at or ''}"
            )
        return 0

    return run_with_resources(run)


def _set(args: argparse.Namespace) -> int:
    async def run(resources: Resources) -> int:
        from gateway.work.plane import routing_service

        (view,) = await routing_service(resources).set_shares({args.route: args.share}, cli_actor())
        print(f"{view.route.id}: share {view.share:.3f} (every replica within a second)")
        return 0

    return run_with_resources(run)


def _drain(args: argparse.Namespace) -> int:
    async def run(resources: Resources) -> int:
        from gateway.work.plane import routing_service

        drained = await routing_service(resources).drain(args.route, actor=cli_actor())
        print(
            f"{args.route}: to_native={drained.to_native} relabelled={drained.relabelled}"
            " (delayed, dead or leased: native when next ready)"
        )
        return 0

    return run_with_resources(run)
