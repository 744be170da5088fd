"""Every command, option and argument of `gateway` says what it is for in `--help`."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from gateway.cli.main import build_parser


def _parsers(
    parser: argparse.ArgumentParser, path: str = "gateway"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def _missing_help(path: str, parser: argparse.ArgumentParser) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            # A subcommand's help is the `help=` of its add_parser, kept per choice.
            described = {a.dest for a in action._choices_actions if a.help}
            yield from (f"{path} {name}" for name in action.choices if name not in described)
            continue
        if not action.help or action.help == argparse.SUPPRESS:
            yield f"{path} {'/'.join(action.option_strings) or action.dest}"


def test_every_command_option_and_argument_has_help() -> None:
    parsers = list(_parsers(build_parser()))
    assert len(parsers) > 20  # the walk reached the nested subcommands
    missing = [m for path, parser in parsers for m in _missing_help(path, parser)]
    assert missing == []


def test_the_walk_finds_an_option_without_help() -> None:
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers(dest="c")
    child = sub.add_parser("child", help="a child")
    child.add_argument("--quiet", action="store_true")
    sub.add_parser("bare")
    found = [m for path, p in _parsers(parser, "x") for m in _missing_help(path, p)]
    assert found == ["x bare", "x child --quiet"]
