"""The GitHub workflow runs the same gate as `.ci/run`, against real backends."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    return loaded


def commands(job: str) -> list[str]:
    return [step["run"] for step in workflow()["jobs"][job]["steps"] if "run" in step]


def test_jobs_lint_test_and_build_the_image() -> None:
    assert set(workflow()["jobs"]) == {"lint", "test", "image"}
    assert "make lint" in commands("lint")
    assert "bash .ci/run" in commands("test")
    assert any(c.startswith("docker build") for c in commands("image"))


def test_backends_are_service_containers_at_the_urls_ci_run_defaults_to() -> None:
    job = workflow()["jobs"]["test"]
    assert set(job["services"]) == {"redis", "postgres"}
    ci_run = (ROOT / ".ci/run").read_text()
    for name in ("REDIS_URL", "DATABASE_URL"):
        default = re.search(rf'{name}="\$\{{{name}:-([^}}]+)\}}"', ci_run)
        assert default, name
        assert job["env"][name] == default.group(1)
    assert job["env"]["CI"] == "true"


def test_oldest_supported_backends_are_tested() -> None:
    matrix = workflow()["jobs"]["test"]["strategy"]["matrix"]["include"]
    assert {"redis": "6.2", "postgres": "14"} in matrix


def test_ci_run_passes_its_arguments_on_and_runs_the_embedded_subset() -> None:
    ci_run = (ROOT / ".ci/run").read_text()
    # Both pytest runs get the arguments (it used to `exec bash scripts/test.sh` bare,
    # so `bash .ci/run -k x` silently ran everything).
    assert re.search(r'^bash scripts/test\.sh "\$@"$', ci_run, re.MULTILINE)
    assert re.search(r'"\$\{selection\[@\]\}" "\$@"$', ci_run, re.MULTILINE)
    assert "env -u REDIS_URL -u DATABASE_URL -u CI" in ci_run
    subset = re.search(r"EMBEDDED_SUBSET=\(\n(.*?)\n\)", ci_run, re.DOTALL)
    assert subset, "EMBEDDED_SUBSET not found"
    paths = subset.group(1).split()
    assert "tests/test_embedded.py" in paths
    # A renamed or deleted module would make the embedded run fail to collect, not skip.
    assert [p for p in paths if not (ROOT / p).is_file()] == []
