"""Ops commands of the public plane: `gateway keys`, `gateway users`, `gateway cache`.

`keys create` prints the new key alone on stdout and what it describes (id, name, tier,
owner) on stderr, so `KEY=$(gateway keys create ...)` captures exactly the key while a
person at the terminal still reads both.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from gateway.audit.actor import cli_actor
from gateway.kit.cli_json import add_json_option, print_json_lines
from gateway.kit.cli_runner import run_with_resources

if TYPE_CHECKING:
    from gateway.core.resources import Resources
    from gateway.public.api_keys import ApiKeyService
    from gateway.public.users import UserService


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keys`, `users` and `cache`."""
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )
    create = keys.add_parser(
        "create", help="create a key; prints it alone on stdout (its details on stderr)"
    )
    create.add_argument("--name", required=True, help="what the key is for, shown in lists")
    create.add_argument("--tier", required=True, help="a tier of TIERS_FILE (e.g. free)")
    create.add_argument("--user", default=None, help="owner uid (default: a service key)")
    create.add_argument(
        "--scope",
        action="append",
        dest="scopes",
        metavar="SCOPE",
        help="what the key may do, repeatable (e.g. jobs:read); default: the owner's role",
    )
    create.set_defaults(handler=_keys_create)
    listing = keys.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--user", default=None, help="only this user's keys")
    add_json_option(listing, "key (never its secret)")
    listing.set_defaults(handler=_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", help="the id `keys create` and `keys list` show")
    revoke.set_defaults(handler=_keys_revoke)

    users = sub.add_parser("users", help="manage public-port users").add_subparsers(
        dest="users_command", required=True, metavar="ACTION"
    )
    tier = users.add_parser("set-tier", help="set a user's tier")
    tier.add_argument("uid", help="the user's Firebase uid")
    tier.add_argument("tier", help="a tier of TIERS_FILE")
    tier.set_defaults(handler=_users_set_tier)
    role = users.add_parser("set-role", help="set a user's role (refused for the last admin)")
    role.add_argument("uid", help="the user's id (Firebase uid, or issuer:sub)")
    role.add_argument("role", help="admin, operator, user or service")
    role.set_defaults(handler=_users_set_role)
    find = users.add_parser("list", help="list users by uid (search by uid or email prefix)")
    find.add_argument("--query", default=None, help="a uid or email prefix")
    find.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_json_option(find, "user")
    find.set_defaults(handler=_users_list)
    disable = users.add_parser(
        "disable", help="disable a user: revoke their keys, refuse their tokens everywhere"
    )
    disable.add_argument("uid", help="the user's id (Firebase uid, or issuer:sub)")
    disable.set_defaults(handler=_users_disable)
    enable = users.add_parser("enable", help="enable a disabled user (revoked keys stay so)")
    enable.add_argument("uid", help="the user's id (Firebase uid, or issuer:sub)")
    enable.set_defaults(handler=_users_enable)

    cache = sub.add_parser("cache", help="manage the response cache").add_subparsers(
        dest="cache_command", required=True, metavar="ACTION"
    )
    purge = cache.add_parser("purge", help="drop cached responses matching a glob")
    purge.add_argument("pattern", nargs="?", default="*", help="glob over /path?query#tier")
    purge.set_defaults(handler=_cache_purge)


def _services(resources: Resources) -> tuple[ApiKeyService, UserService]:
    from gateway.core.settings.tiers import load_tiers
    from gateway.public.api_keys import ApiKeyService
    from gateway.public.plane import revocation_feed
    from gateway.public.users import UserService

    settings = resources.settings
    tiers = load_tiers(settings.tiers_file, settings.default_tier)
    # Not subscribed: the CLI caches nothing, it only announces (to the gateways).
    feed = revocation_feed(resources)
    return (
        ApiKeyService(resources.sessionmaker, tiers, 0, feed=feed),
        UserService(resources.sessionmaker, tiers, 0, feed=feed),
    )


def _keys_create(args: argparse.Namespace) -> int:
    async def work(resources: Resources) -> int:
        from gateway.public.permissions import parse_scopes

        keys, _ = _services(resources)
        scopes = None if args.scopes is None else parse_scopes(args.scopes, "--scope")
        issued = await keys.create(
            name=args.name, tier=args.tier, user_uid=args.user, actor=cli_actor(), scopes=scopes
        )
        shown = issued.row.scopes
        for line in (
            f"id:    {issued.row.id}",
            f"name:  {issued.row.name}",
            f"tier:  {issued.row.tier}",
            f"owner: {issued.row.user_uid or '(service)'}",
            f"scopes: {' '.join(shown) if shown is not None else '(the owner role allows)'}",
            "The key is shown once; store it now:",
        ):
            print(line, file=sys.stderr)
        print(issued.secret)
        return 0

    return run_with_resources(work)


def _keys_list(args: argparse.Namespace) -> int:
    async def work(resources: Resources) -> int:
        keys, _ = _services(resources)
        rows = await keys.list_for(args.user, all_users=args.user is None)
        if args.json:
            print_json_lines(
                {
                    "id": r.id,
                    "name": r.name,
                    "tier": r.tier,
                    "owner": r.user_uid,
                    "status": "revoked" if r.revoked_at else "active",
                    "created_at": r.created_at,
                    "revoked_at": r.revoked_at,
                }
                for r in rows
            )
            return 0
        print(f"{'ID':<12}  {'TIER':<12}  {'OWNER':<28}  {'STATUS':<8}  {'CREATED':<20}  NAME")
        for r in rows:
            status = "revoked" if r.revoked_at else "active"
            created = r.created_at.strftime("%Y-%m-%d %H:%M:%S")
            owner = r.user_uid or "(service)"
            print(f"{r.id:<12}  {r.tier:<12}  {owner:<28}  {status:<8}  {created:<20}  {r.name}")
        return 0

    return run_with_resources(work)


def _keys_revoke(args: argparse.Namespace) -> int:
    async def work(resources: Resources) -> int:
        keys, _ = _services(resources)
        row = await keys.revoke(args.key_id, owner=None, actor=cli_actor())
        print(f"revoked {row.id} ({row.name})")
        return 0

    return run_with_resources(work)


def _users_set_tier(args: argparse.Namespace) -> int:
    async def work(resources: Resources) -> int:
        _, users = _services(resources)
        row = await users.set_tier(args.uid, args.tier, actor=cli_actor())
        print(f"{row.uid}: tier={row.tier} role={row.role}")
        return 0

    return run_with_resources(work)


def _users_set_role(args: argparse.Namespace) -> int:
    async def work(resources: Resources) -> int:
        _, users = _services(resources)
        row = await users.set_role(args.uid, args.role, actor=cli_actor())
        print(f"{row.uid}: tier={row.tier} role={row.role}")
        return 0

    return run_with_resources(work)


def _users_list(args: argparse.Namespace) -> int:
    async def work(resources: Resources) -> int:
        _, users = _services(resources)
        rows = await users.search(query=args.query, limit=max(1, args.limit))
        if args.json:
            print_json_lines(
                {
                    "uid": r.uid,
                    "email": r.email,
                    "tier": r.tier,
                    "role": r.role,
                    "created_at": r.created_at,
                    "last_seen_at": r.last_seen_at,
                    "disabled_at": r.disabled_at,
                }
                for r in rows
            )
            return 0
        print(f"{'UID':<36}  {'ROLE':<8}  {'TIER':<12}  {'STATUS':<8}  EMAIL")
        for r in rows:
            status = "disabled" if r.disabled_at else "active"
            print(f"{r.uid:<36}  {r.role:<8}  {r.tier or '-':<12}  {status:<8}  {r.email or '-'}")
        return 0

    return run_with_resources(work)


def _users_disable(args: argparse.Namespace) -> int:
    async def work(resources: Resources) -> int:
        _, users = _services(resources)
        row = await users.disable(args.uid, actor=cli_actor())
        print(f"{row.uid}: disabled since {row.disabled_at}; keys revoked")
        return 0

    return run_with_resources(work)


def _users_enable(args: argparse.Namespace) -> int:
    async def work(resources: Resources) -> int:
        _, users = _services(resources)
        row = await users.enable(args.uid, actor=cli_actor())
        print(f"{row.uid}: enabled (revoked keys stay revoked)")
        return 0

    return run_with_resources(work)


def _cache_purge(args: argparse.Namespace) -> int:
    from gateway.core.audience import Audience
    from gateway.public.cache import ResponseCache
    from gateway.public.metrics import public_metrics

    async def work(resources: Resources) -> int:
        cache = ResponseCache(
            resources, public_metrics(resources.metrics.registry(Audience.PUBLIC))
        )
        print(f"purged {await cache.purge(args.pattern, actor=cli_actor())} cached responses")
        return 0

    return run_with_resources(work)
