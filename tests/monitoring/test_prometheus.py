"""prometheus.yml and the alert rules: promtool's checks and rule unit tests, and the
conventions promtool cannot see (every alert tested both ways, annotated, documented)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.core.settings import Settings
from tests.monitoring.conftest import MONITORING, ROOT

RULES = MONITORING / "prometheus" / "alerts.yml"
RULE_TESTS = sorted((MONITORING / "prometheus" / "tests").glob("*.yml"))
CONFIG = ROOT / "prometheus.yml"
OPERATIONS_DOC = ROOT / "README.md"


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def local_config(tmp_path: Path) -> Path:
    """prometheus.yml with its in-container rule path pointed at this checkout."""
    text = CONFIG.read_text().replace("/etc/prometheus/alerts/", f"{RULES.parent}/")
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    return path


def test_promtool_check_config(promtool: str, tmp_path: Path) -> None:
    result = _run(promtool, "check", "config", str(local_config(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    # The rule glob must actually match the alerts file, not silently load nothing.
    assert "SUCCESS: 1 rule files found" in result.stdout + result.stderr


def test_promtool_check_rules(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_promtool_rule_unit_tests(promtool: str) -> None:
    assert RULE_TESTS
    result = _run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_issue_alert_exists() -> None:
    names = {rule["alert"] for rule in _alerts()}
    assert {
        "GatewayDown",
        "GatewayHigh5xxRatio",
        "GatewayHighP99Latency",
        "UpstreamCircuitBreakerOpen",
        "OldestReadyTaskTooOld",
        "DeadLettersGrowing",
        "NoActiveWorkers",
        "ProxyPoolExhausted",
        "GatewayDependencyDown",
    } <= names


def test_every_alert_is_tested_firing_and_silent() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in _alerts()}
    assert names - fired == set(), "alerts never proven to fire"
    assert names - silent == set(), "alerts never proven silent on healthy series"


@pytest.mark.parametrize("rule", _alerts(), ids=lambda rule: rule["alert"])
def test_alert_is_annotated_for_the_on_call(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    for key in ("summary", "description", "runbook", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{rule['alert']} lacks {key}"
    # The runbook link points at a heading of the README.
    anchor = annotations["runbook_url"].split("#", 1)[1]
    headings = re.findall(r"^#+ (.+)$", OPERATIONS_DOC.read_text(), flags=re.MULTILINE)
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    assert anchor in anchors


def test_config_scrapes_the_three_ports_of_settings() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "gateway"]
    targets = {
        target.rsplit(":", 1)[1]: group["labels"]["audience"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    defaults = Settings.model_fields
    assert targets == {
        str(defaults["public_port"].default): "public",
        str(defaults["parcel_internal_port"].default): "parcel",
        str(defaults["party_internal_port"].default): "party",
    }
    assert job["metrics_path"] == "/metrics"
    # instance = host without port, the convention every aggregation relies on.
    relabel = job["relabel_configs"][0]
    assert relabel["target_label"] == "instance"
    assert re.fullmatch(relabel["regex"], "gateway:8080")
    assert config["rule_files"] == ["/etc/prometheus/alerts/*.yml"]
