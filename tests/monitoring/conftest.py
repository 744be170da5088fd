"""Fixtures for the monitoring assets: repository paths and the Prometheus binaries."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_binary(name: str) -> str:
    """Path of a Prometheus binary; missing is a failure under CI and a skip elsewhere."""
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed: run monitoring/ensure_tools.sh (Debian package prometheus)"
    if _in_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary."""
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """The prometheus server binary."""
    return require_binary("prometheus")
