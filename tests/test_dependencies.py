"""requirements/*.lock agree with pyproject.toml.

CI and `scripts/bootstrap.sh` install the dev lock and the image installs the runtime
lock, each without re-resolving, so a lock that pyproject.toml has moved away from
would test and ship versions nobody asked for. `scripts/lock.sh` writes, below uv's
header, a digest of pyproject.toml's dependency tables; a different digest means the
lock was compiled from another pyproject.toml. The other checks say what is wrong:
a direct dependency missing from a lock or pinned outside its specifier, an unhashed
pin, or a runtime pin that the dev lock (what CI tests) does not share.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# Each lock and the extras it is compiled with (scripts/lock.sh, scripts/bootstrap.sh).
LOCKS = {
    "runtime.lock": (),
    "dev.lock": ("dev",),
    "bench.lock": ("dev", "bench"),
}
DIGEST_LINE = re.compile(r"^# pyproject-dependencies-sha256: ([0-9a-f]{64})$", re.MULTILINE)


@dataclass(frozen=True)
class Pin:
    """One `name==version ; marker` entry of a lock with its hashes."""

    name: str
    version: Version
    requirement: Requirement
    hashes: tuple[str, ...]


def project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        table: dict[str, Any] = tomllib.load(f)["project"]
    return table


def dependency_digest() -> str:
    """The digest scripts/lock.sh writes; keep the two computations identical."""
    table = project()
    inputs = {k: table.get(k) for k in ("requires-python", "dependencies", "optional-dependencies")}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def direct_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    table = project()
    lines = list(table["dependencies"])
    for extra in extras:
        lines += table["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def read_lock(name: str) -> tuple[str, dict[str, list[Pin]]]:
    """The lock's text and its pins by canonical name (a name may have one per marker)."""
    text = (ROOT / "requirements" / name).read_text()
    pins: dict[str, list[Pin]] = {}
    entries = re.sub(r"\\\n\s*", " ", text).splitlines()  # join continuation lines
    for entry in entries:
        if not entry.strip() or entry.lstrip().startswith("#"):
            continue
        spec, *options = entry.split(" --hash=")
        requirement = Requirement(spec.strip())
        (specifier,) = requirement.specifier  # uv writes exactly one `==` per entry
        assert specifier.operator == "==", entry
        pin = Pin(
            name=canonicalize_name(requirement.name),
            version=Version(specifier.version),
            requirement=requirement,
            hashes=tuple(option.strip() for option in options),
        )
        pins.setdefault(pin.name, []).append(pin)
    return text, pins


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_was_compiled_from_this_pyproject(lock: str) -> None:
    text, _ = read_lock(lock)
    match = DIGEST_LINE.search(text)
    assert match is not None, f"requirements/{lock} has no digest line: run bash scripts/lock.sh"
    assert match.group(1) == dependency_digest(), (
        f"pyproject.toml's dependencies changed since requirements/{lock} was compiled: "
        "run bash scripts/lock.sh"
    )


@pytest.mark.parametrize(("lock", "extras"), LOCKS.items())
def test_every_direct_dependency_is_pinned_inside_its_specifier(
    lock: str, extras: tuple[str, ...]
) -> None:
    _, pins = read_lock(lock)
    problems = []
    for requirement in direct_requirements(extras):
        found = pins.get(canonicalize_name(requirement.name), [])
        if not found:
            problems.append(f"{requirement} is not pinned")
        for pin in found:
            if not requirement.specifier.contains(pin.version, prereleases=True):
                problems.append(f"{requirement} but the lock pins {pin.version}")
    assert not problems, f"requirements/{lock}: " + "; ".join(problems)


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_is_hashed(lock: str) -> None:
    _, pins = read_lock(lock)
    unhashed = [str(pin.requirement) for group in pins.values() for pin in group if not pin.hashes]
    assert not unhashed, f"requirements/{lock} pins without hashes: {unhashed}"


def test_the_image_ships_what_ci_tests() -> None:
    _, runtime = read_lock("runtime.lock")
    _, dev = read_lock("dev.lock")
    differ = [
        f"{name}: runtime {[str(p.version) for p in group]}, dev "
        f"{[str(p.version) for p in dev.get(name, [])]}"
        for name, group in runtime.items()
        if {p.version for p in group} != {p.version for p in dev.get(name, [])}
    ]
    assert not differ, "runtime.lock and dev.lock disagree: " + "; ".join(differ)
