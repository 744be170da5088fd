"""The registry of subcommands; each module adds its parser with a `register` function."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gateway.cli import dlq, enqueue, migrate, proxies, public, serve, tokens, workers

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

REGISTRY: list[Register] = [serve.register, migrate.register]
REGISTRY += [tokens.register, enqueue.register, workers.register, dlq.register]
REGISTRY += [public.register]
REGISTRY += [proxies.register]
