"""`@redocly/cli`, the OpenAPI linter, installed from npm into a per-user cache.

`scripts/ensure_redocly.sh` installs a pinned version once (later runs are instant). Under
CI=true a linter that cannot be installed fails the test (never a skip); elsewhere tests
are skipped only when node/npm are missing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"CI=true but @redocly/cli is unavailable: {reason}")
    pytest.skip(f"@redocly/cli unavailable: {reason}")


def redocly() -> str:
    """The path of the `redocly` executable (installed on first use)."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        _unavailable("node/npm are not installed")
    lock_path = Path(tempfile.gettempdir()) / "gwtest-redocly-cli.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two concurrent npm installs corrupt a prefix
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "ensure_redocly.sh")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if result.returncode != 0:
        _unavailable(f"installing @redocly/cli failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def lint(document: Path) -> subprocess.CompletedProcess[str]:
    """`redocly lint` of one document with the recommended rules; exit 0 means no error."""
    env = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"}
    return subprocess.run(
        [redocly(), "lint", "--format=stylish", str(document)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
        cwd=document.parent,
    )
