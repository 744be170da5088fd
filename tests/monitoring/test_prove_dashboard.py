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


def panel_names() -> list[str]:
    names, row = [], ""
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
        else:
            names.append(f"{row} / {panel['title']}")
    return names


def test_pending_panels_fail_unless_allowed_and_others_always_fail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    proof = proof_module()
    unfilled = {s.plane for s in proof.proof_traffic.sources() if s.run is None}
    plane = next(iter(unfilled), None)
    if plane is None:
        pytest.skip("every traffic hook is filled in: nothing can be pending")
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
def test_every_panel_is_reported_and_foundation_panels_have_data(
    backends: TestBackends, prometheus_binary: str
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(MONITORING / "prove_dashboard.py"),
            "--redis-url",
            backends.redis_url,
            "--database-url",
            backends.database_url,
            "--prometheus",
            prometheus_binary,
            "--traffic-seconds",
            "6",
            "--allow-pending",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr

    lines = [
        line for line in out.splitlines() if line.split(" ", 1)[0] in {"OK", "MISSING", "ERROR"}
    ]
    # "<STATUS> <row> / <panel>: <detail>", one line per panel in dashboard order.
    reported = [
        line.split(" ", 1)[1].split(": ", 1)[0] for line in lines if not line.startswith("OK rules")
    ]
    assert reported == panel_names()
    alerts = yaml.safe_load((MONITORING / "prometheus" / "alerts.yml").read_text())
    count = sum(len(group["rules"]) for group in alerts["groups"])
    assert f"OK rules: {count} alerting rules loaded and evaluating" in out
    assert not [line for line in lines if line.startswith("ERROR")]
    # Whatever is missing is waiting for an unfilled plane hook, never a foundation metric.
    for line in lines:
        if line.startswith("MISSING"):
            assert "(pending: traffic hook not filled in)" in line, line
    for name in (
        "Public traffic / Requests/s by route and status",
        "Public traffic / Latency p50 / p95 / p99",
        "Public traffic / 4xx and 5xx ratio",
        "Proxy pool and runtime / Readiness of Redis and PostgreSQL",
        "Proxy pool and runtime / Event-loop lag",
        "Proxy pool and runtime / Memory (RSS)",
        "Proxy pool and runtime / CPU",
        "Proxy pool and runtime / Redis pool connections",
        "Proxy pool and runtime / Database pool connections",
        "Proxy pool and runtime / Build",
    ):
        assert any(line.startswith(f"OK {name}: ") for line in lines), name
