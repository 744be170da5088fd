"""Every file the gateway reads at run time ships in its wheel (the image installs the wheel).

An editable install reads the source tree, so a data file missing from
`[tool.setuptools.package-data]` passes every other test and then fails at start-up in
the Docker image (it happened: `services/public/ratelimit.lua` was left out).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "gateway"


def test_every_non_python_file_of_the_package_is_declared_as_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gateway"]
    data_files = sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    )
    assert data_files, "the package has data files (Lua scripts, migrations config)"
    # setuptools expands the patterns like Path.glob (no `*` across directories).
    declared = {path.relative_to(PACKAGE).as_posix() for p in patterns for path in PACKAGE.glob(p)}
    missing = [f for f in data_files if f not in declared]
    assert missing == [], "add these to [tool.setuptools.package-data] in pyproject.toml"
