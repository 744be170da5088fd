"""The panel proof: a real gateway and a real Prometheus, one line per panel."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from types import ModuleType

import pytest
import yaml

from tests.monitoring.conftest import MONITORING
from tests.support.backends import TestBackends

DASHBOARD = MONITORING / "grafana" / "dashboards" / "gateway_command_center.json"


def proof_module() -> ModuleType:
    """monitoring/prove_dashboard.py imported as a module (it is a script, not a package)."""
    if str(MONITORING) not in sys.path:
        sys.path.insert(0, str(MONITORING))
    return importlib.import_module("prove_dashboard")


def _prove(
    backends: TestBackends, prometheus_binary: str, *flags: str
) -> subprocess.CompletedProcess[str]:
    """Run monitoring/prove_dashboard.py against the test backends."""
    return subprocess.run(
        [
            sys.executable,
            str(MONITORING / "prove_dashboard.py"),
            "--redis-url",
            backends.redis_url,
            "--database-url",
            backends.database_url,
            "--prometheus",
            prometheus_binary,
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def panel_names() -> list[str]:
    names, row = [], ""
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
        else:
            names.append(f"{row} / {panel['title']}")
    return names


def test_pending_panels_fail_unless_allowed_and_others_always_fail(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proof = proof_module()
    # Every hook is filled in now; an unfilled one stands in to test the rule.
    plane = "future-plane"
    unfilled = proof.proof_traffic.TrafficSource(plane, None)
    monkeypatch.setattr(proof.proof_traffic, "sources", lambda: [unfilled])
    pending = proof.PanelResult("Row", "waits for a hook", [0], {"m_total": plane}, [])
    broken = proof.PanelResult("Row", "foundation gap", [0], {"up": "foundation"}, [])
    fine = proof.PanelResult("Row", "fine", [2], {}, [])

    assert proof.report([pending, fine], allow_pending=True) == 0
    assert proof.report([pending, fine], allow_pending=False) == 1
    assert proof.report([broken, fine], allow_pending=True) == 1
    out = capsys.readouterr().out
    assert f"MISSING Row / waits for a hook: no series for m_total ({plane}) (pending" in out
    assert "MISSING Row / foundation gap: no series for up (foundation)\n" in out
    assert "OK Row / fine: 2 series" in out


@pytest.mark.e2e
def test_every_panel_has_data(backends: TestBackends, prometheus_binary: str) -> None:
    # --allow-pending excuses only panels waiting for an unfilled hook; every hook is
    # filled in, so this run is strict: one OK line per panel or the test fails.
    result = _prove(backends, prometheus_binary, "--traffic-seconds", "6", "--allow-pending")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "HOOK " not in out, out

    lines = [
        line for line in out.splitlines() if line.split(" ", 1)[0] in {"OK", "MISSING", "ERROR"}
    ]
    # "<STATUS> <row> / <panel>: <detail>", one line per panel in dashboard order.
    panels = [line for line in lines if not line.startswith("OK rules")]
    reported = [line.split(" ", 1)[1].split(": ", 1)[0] for line in panels]
    assert reported == panel_names()
    assert [line for line in panels if not line.startswith("OK ")] == [], out
    alerts = yaml.safe_load((MONITORING / "prometheus" / "alerts.yml").read_text())
    count = sum(len(group["rules"]) for group in alerts["groups"])
    assert f"OK rules: {count} alerting rules loaded and evaluating" in out


@pytest.mark.e2e
def test_every_panel_query_has_a_value_on_a_quiet_system(
    backends: TestBackends, prometheus_binary: str
) -> None:
    """No traffic beyond a platform's first task and proxy lease: every query still
    returns a number (zeros), not "No data" (18 of 40 had no value before)."""
    result = _prove(backends, prometheus_binary, "--quiet")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    targets = sum(
        len(panel["targets"])
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        if panel["type"] != "row"
    )
    lines = [line for line in out.splitlines() if line.split(" ", 1)[0] in {"OK", "EMPTY"}]
    assert len(lines) == targets, out
    assert [line for line in lines if not line.startswith("OK ")] == [], out
    assert f"{targets}/{targets} panel queries with a value on a quiet system; 0 empty" in out
