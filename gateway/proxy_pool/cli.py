"""`gateway proxies add|list|remove`: manage the outbound proxy inventory.

Proxy URLs carry credentials. They are read from arguments, a file or standard input
(`-`), stored in PostgreSQL and never printed or logged: every output line shows the
URL with its password masked. Prefer `--file`/stdin to arguments, which other local
users can read in the process list.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.kit.cli_errors import EXIT_USAGE, CliError
from gateway.kit.cli_json import add_json_option, print_json_lines
from gateway.kit.cli_runner import run_with_resources
from gateway.proxy_pool.urls import InvalidProxyUrl


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `proxies` subcommand group."""
    parser = sub.add_parser("proxies", help="manage the outbound proxy pool")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add proxy URLs (scheme://[user:pass@]host:port)")
    add.add_argument("urls", nargs="*", metavar="URL", help="proxy URLs")
    add.add_argument(
        "--file", metavar="FILE", help="read URLs from FILE, one per line ('-' for stdin)"
    )
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="list proxies (passwords masked)")
    add_json_option(listing, "proxy")
    listing.set_defaults(handler=_list)

    remove = actions.add_parser("remove", help="remove proxies by id")
    remove.add_argument("ids", nargs="+", type=int, metavar="ID", help="ids `proxies list` shows")
    remove.set_defaults(handler=_remove)


def _read_urls(args: argparse.Namespace) -> list[str]:
    urls = list(args.urls)
    if args.file:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            try:
                with open(args.file, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                raise CliError(f"cannot read {args.file}: {exc.strerror}", EXIT_USAGE) from exc
        urls += [line.strip() for line in text.splitlines()]
    urls = [u for u in urls if u and not u.startswith("#")]
    if not urls:
        raise CliError("no proxy URLs given (arguments, --file FILE or --file -)", EXIT_USAGE)
    return urls


def _add(args: argparse.Namespace) -> int:
    from gateway.proxy_pool.inventory import add_proxies

    urls = _read_urls(args)
    try:
        added = run_with_resources(lambda r: add_proxies(r, urls))
    except InvalidProxyUrl as exc:
        # The message never contains the URL; say which entry so it can be found.
        index = next(i for i, url in enumerate(urls, 1) if _invalid(url))
        raise CliError(f"proxy URL #{index} is invalid: {exc}", EXIT_USAGE) from exc
    for item in added:
        verb = "added" if item.created else "exists"
        print(f"{verb} {item.proxy_id} {item.masked_url}")
    return 0


def _invalid(url: str) -> bool:
    from gateway.proxy_pool.urls import normalize_proxy_url

    try:
        normalize_proxy_url(url)
    except InvalidProxyUrl:
        return True
    return False


def _list(args: argparse.Namespace) -> int:
    from gateway.proxy_pool.inventory import describe_proxies

    views = run_with_resources(describe_proxies)
    if args.json:
        doc: list[dict[str, Any]] = [
            {
                "id": v.proxy_id,
                "url": v.masked_url,
                "created_at": v.created_at.isoformat(),
                "platforms": {
                    p.platform: {
                        "state": p.state,
                        "errors": p.errors,
                        "bans": p.bans,
                        "cool_until": p.cool_until.isoformat() if p.cool_until else None,
                    }
                    for p in v.platforms
                },
            }
            for v in views
        ]
        print_json_lines(doc)
        return 0
    if not views:
        print("no proxies")
        return 0
    print(f"{'ID':>6}  {'URL':<48}  PLATFORMS")
    for v in views:
        states = " ".join(
            f"{p.platform}={p.state}"
            + (f"(errors={p.errors})" if p.errors else "")
            + (f"(bans={p.bans})" if p.bans else "")
            for p in sorted(v.platforms, key=lambda p: p.platform)
        )
        print(f"{v.proxy_id:>6}  {v.masked_url:<48}  {states or '-'}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from gateway.proxy_pool.inventory import remove_proxies

    removed = run_with_resources(lambda r: remove_proxies(r, args.ids))
    missing = [str(i) for i, found in removed.items() if not found]
    for proxy_id, found in removed.items():
        if found:
            print(f"removed {proxy_id}")
    if missing:
        raise CliError(f"no proxy with id {', '.join(missing)}", 1)
    return 0
