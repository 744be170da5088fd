"""docker-compose.yml runs the whole stack with one command, wired the way prometheus.yml
and the Grafana provisioning expect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FIELDS = Settings.model_fields


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def mounts(service: str) -> dict[str, str]:
    """source -> target of a service's bind mounts ("source:target[:mode]")."""
    volumes = compose()["services"][service]["volumes"]
    return dict(v.split(":")[:2] for v in volumes if v.startswith("./"))


def test_one_command_starts_every_service() -> None:
    services = compose()["services"]
    assert set(services) == {"gateway", "redis", "postgres", "prometheus", "grafana"}
    # Profiles would leave services out of a plain `docker compose up`.
    assert not [name for name, spec in services.items() if spec.get("profiles")]


def test_gateway_ports_env_and_grace_period() -> None:
    gateway = compose()["services"]["gateway"]
    published = {p.rsplit(":", 1)[1].split()[0] for p in gateway["ports"]}
    defaults = {
        str(FIELDS[name].default)
        for name in ("public_port", "parcel_internal_port", "party_internal_port")
    }
    assert published == defaults
    assert all(p.startswith("127.0.0.1:") for p in gateway["ports"])
    env = gateway["environment"]
    for key in env:
        assert key.lower() in FIELDS, key
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert "@postgres:" in env["DATABASE_URL"]
    grace = int(gateway["stop_grace_period"].rstrip("s"))
    assert grace > float(env["GRACEFUL_TIMEOUT_S"])
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_prometheus_gets_the_config_and_the_alert_rules() -> None:
    assert mounts("prometheus") == {
        "./prometheus.yml": "/etc/prometheus/prometheus.yml",
        "./monitoring/prometheus": "/etc/prometheus/alerts",
    }
    config = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts/*.yml"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "gateway"]
    hosts = {t.split(":")[0] for g in job["static_configs"] for t in g["targets"]}
    assert hosts == {"gateway"}  # the compose service name


def test_grafana_gets_provisioning_and_dashboards() -> None:
    grafana_mounts = mounts("grafana")
    assert grafana_mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/dashboards/gateway.yml").read_text()
    )["providers"][0]
    assert grafana_mounts["./monitoring/grafana/dashboards"] == provider["options"]["path"]
    datasource = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    prometheus_port = compose()["services"]["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert prometheus_port == "9090"


def test_every_mounted_source_exists() -> None:
    for service in compose()["services"]:
        if "volumes" in compose()["services"][service]:
            for source in mounts(service):
                assert (ROOT / source).exists(), source
