"""The worker plane's commands: tokens, enqueue, workers, dead letters, Celery routing."""

from __future__ import annotations

import argparse

from gateway.work.cli import dlq, enqueue, routing, tokens, workers


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the worker plane's subcommands."""
    for module in (tokens, enqueue, workers, dlq, routing):
        module.register(sub)
