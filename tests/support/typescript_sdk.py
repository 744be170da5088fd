"""The TypeScript SDK (`clients/typescript/`) and its npm packages, for the tests.

`scripts/ensure_ts_sdk.sh` runs `npm ci` into `clients/typescript/node_modules` when the
lock file changed (later runs are instant). Under CI=true missing node/npm or a failed
install fails the test (never a skip); elsewhere the tests are skipped.
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
SDK = ROOT / "clients" / "typescript"
SCHEMA = SDK / "src" / "schema.d.ts"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"CI=true but the TypeScript SDK's npm packages are unavailable: {reason}")
    pytest.skip(f"TypeScript SDK unavailable: {reason}")


def node() -> str:
    """The `node` executable, after the SDK's npm packages are installed."""
    node_path, npm_path = shutil.which("node"), shutil.which("npm")
    if node_path is None or npm_path is None:
        _unavailable("node/npm are not installed")
    assert node_path is not None
    lock_path = Path(tempfile.gettempdir()) / "gwtest-ts-sdk.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two concurrent `npm ci` corrupt node_modules
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "ensure_ts_sdk.sh")],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if result.returncode != 0:
        _unavailable(f"npm ci failed:\n{result.stderr[-3000:]}")
    return node_path


# As package.json's `generate` script: a field with a default stays optional in a request
# body (openapi-typescript would otherwise make `priority` required in POST /v1/jobs).
GENERATE_FLAGS = ("--default-non-nullable", "false")


def generate_types(document: Path, output: Path) -> None:
    """`openapi-typescript document -o output` with the SDK's pinned version and flags."""
    cli = SDK / "node_modules" / "openapi-typescript" / "bin" / "cli.js"
    result = subprocess.run(
        [node(), str(cli), str(document), *GENERATE_FLAGS, "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=SDK,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def typecheck() -> subprocess.CompletedProcess[str]:
    """`tsc -p clients/typescript` (the declarations and test/typecheck.ts); exit 0: clean."""
    tsc = SDK / "node_modules" / "typescript" / "bin" / "tsc"
    return subprocess.run(
        [node(), str(tsc), "-p", str(SDK)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=SDK,
    )
