"""The registry of subcommands: the process's own, then each capability's `cli.register`.

This is the one place that says which capabilities have commands; a new capability adds
its `cli` module here.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gateway.audit import cli as audit_cli
from gateway.cli import demo, migrate, serve
from gateway.proxy_pool import cli as proxy_pool_cli
from gateway.public import cli as public_cli
from gateway.work import cli as work_cli

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

REGISTRY: list[Register] = [
    serve.register,
    migrate.register,
    work_cli.register,
    public_cli.register,
    proxy_pool_cli.register,
    audit_cli.register,
    demo.register,
]
