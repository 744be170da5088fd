"""`gateway audit verify`: walk the audit chain; exit 0 when intact, 1 at the first break.

The last line of a good run is the head (`head SEQ:HASH`): record it somewhere the
database's owner cannot write (a ticket, a log pipeline), and pass it back later with
`--head` to also catch the newest rows being removed or the chain being recomputed.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

from gateway.kit.cli_errors import EXIT_FAILURE, EXIT_USAGE, CliError
from gateway.kit.cli_runner import run_with_resources

if TYPE_CHECKING:
    from gateway.core.resources import Resources

_HEAD = re.compile(r"^([1-9][0-9]{0,18}):([0-9a-f]{64})$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit verify`."""
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION"
    )
    verify = audit.add_parser("verify", help="check the hash chain; report the first broken link")
    verify.add_argument(
        "--head", default=None, metavar="SEQ:HASH", help="a head reported by an earlier run"
    )
    verify.set_defaults(handler=_verify)


def _expected_head(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    match = _HEAD.match(value)
    if match is None:
        raise CliError("--head must be SEQ:HASH (a number, a colon, 64 hex digits)", EXIT_USAGE)
    return int(match.group(1)), match.group(2)


def _verify(args: argparse.Namespace) -> int:
    expect_head = _expected_head(args.head)

    async def work(resources: Resources) -> int:
        from gateway.audit.verify import verify_chain

        verdict = await verify_chain(resources.sessionmaker, expect_head=expect_head)
        if not verdict.ok:
            print(f"BROKEN at row {verdict.broken_at}: {verdict.problem}")
            print(f"{verdict.rows} rows verified before it")
            return EXIT_FAILURE
        print(f"OK: {verdict.rows} rows, every link holds")
        print(f"head {verdict.head_seq}:{verdict.head_hash}")
        return 0

    return run_with_resources(work)
