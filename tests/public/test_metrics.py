"""The public plane's metrics: every label value the code can count is exported at 0."""

from __future__ import annotations

import re
from pathlib import Path

import gateway.public
from gateway.public.metrics import AUTH_FAILURE_REASONS

SOURCES = Path(gateway.public.__file__).parent


def _counted_reasons() -> set[str]:
    """Reason codes the public plane's sources can raise or count."""
    found: set[str] = set()
    for path in SOURCES.rglob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'reason="([a-z_]+)"', text))
        found |= set(re.findall(r'auth_failures\.labels\("([a-z_]+)"\)', text))
    # firebase.py maps library errors to reasons in `_reason_for`.
    reason_for = (SOURCES / "firebase.py").read_text().split("def _reason_for", 1)[1]
    found |= set(re.findall(r'return "([a-z_]+)"', reason_for.split("\n\n\n", 1)[0]))
    return found


def test_every_auth_failure_reason_is_declared() -> None:
    counted = _counted_reasons()
    assert "malformed_api_key" in counted  # the scan finds what it should
    assert "bad_signature" in counted
    assert counted - set(AUTH_FAILURE_REASONS) == set()
