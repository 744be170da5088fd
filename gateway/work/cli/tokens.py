"""`gateway tokens create|list|revoke`: worker-port credentials.

`tokens create` prints the new token alone on stdout and what it is (role, name, port)
on stderr, as `keys create` does, so `T=$(gateway tokens create ...)` captures exactly the
token while a person at the terminal still reads both.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gateway.audit.actor import cli_actor
from gateway.kit.cli_json import add_json_option, print_json_lines
from gateway.kit.cli_runner import AUDIENCES, run_with_resources

if TYPE_CHECKING:
    from gateway.core.resources import Resources


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `tokens` subcommand group."""
    parser = sub.add_parser("tokens", help="manage worker tokens (X-Worker-Token)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create", help="create a token; prints it alone on stdout (its details on stderr)"
    )
    create.add_argument(
        "--audience", required=True, choices=AUDIENCES, help="the worker port it is for"
    )
    create.add_argument("--name", required=True, help="unique among live tokens")
    create.add_argument(
        "--role",
        choices=["worker", "producer"],
        default="worker",
        help="worker: lease and report (default); producer: may also enqueue",
    )
    create.set_defaults(handler=_create)

    listing = actions.add_parser("list", help="list tokens (never the secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    add_json_option(listing, "token (never its secret)")
    listing.set_defaults(handler=_list)

    revoke = actions.add_parser("revoke", help="revoke the live token NAME")
    revoke.add_argument("name", help="the name `tokens create` was given")
    revoke.set_defaults(handler=_revoke)


def _create(args: argparse.Namespace) -> int:
    async def run(resources: Resources) -> int:
        from gateway.work.plane import token_store
        from gateway.work.tokens import Role

        token = await token_store(resources).create(
            audience=args.audience, name=args.name, role=Role(args.role), actor=cli_actor()
        )
        print(
            f"Created {args.role} token {args.name!r} for the {args.audience} port.",
            file=sys.stderr,
        )
        print("Store it now; it cannot be shown again:", file=sys.stderr)
        print(token)
        return 0

    return run_with_resources(run)


def _fmt(value: object) -> str:
    return "-" if value is None else str(value)


def _list(args: argparse.Namespace) -> int:
    async def run(resources: Resources) -> int:
        from gateway.work.plane import token_store

        rows = await token_store(resources).list(include_revoked=args.all)
        if args.json:
            print_json_lines(
                {
                    "name": r.name,
                    "audience": r.audience,
                    "role": r.role,
                    "created_at": r.created_at,
                    "last_used_at": r.last_used_at,
                    "revoked_at": r.revoked_at,
                }
                for r in rows
            )
            return 0
        print(f"{'NAME':<32} {'AUDIENCE':<8} {'ROLE':<9} {'CREATED':<25} {'LAST USED':<25} REVOKED")
        for r in rows:
            created = r.created_at.isoformat(timespec="seconds")
            used = _fmt(r.last_used_at and r.last_used_at.isoformat(timespec="seconds"))
            revoked = _fmt(r.revoked_at and r.revoked_at.isoformat(timespec="seconds"))
            print(f"{r.name:<32} {r.audience:<8} {r.role:<9} {created:<25} {used:<25} {revoked}")
        return 0

    return run_with_resources(run)


def _revoke(args: argparse.Namespace) -> int:
    async def run(resources: Resources) -> int:
        from gateway.work.plane import token_store

        await token_store(resources).revoke(args.name, actor=cli_actor())
        print(f"Revoked token {args.name!r}.")
        return 0

    return run_with_resources(run)
