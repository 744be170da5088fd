"""deploy/kubernetes: every manifest parses, and ports, probes, selectors and timeouts
agree with each other and with the gateway's own settings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
FIELDS = Settings.model_fields
PORTS = {
    "public": FIELDS["public_port"].default,
    "parcel": FIELDS["parcel_internal_port"].default,
    "party": FIELDS["party_internal_port"].default,
}


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in manifests() if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def pod_labels() -> dict[str, str]:
    labels: dict[str, str] = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def container() -> dict[str, Any]:
    (only,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(only)


def container_ports() -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container()["ports"]}


def config() -> dict[str, str]:
    data: dict[str, str] = one("ConfigMap", "gateway-config")["data"]
    return data


def selects_pods(selector: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= pod_labels().items()


def test_every_manifest_parses_and_is_applied_or_documented() -> None:
    docs = manifests()
    assert all({"apiVersion", "kind", "metadata"} <= d.keys() for d in docs)
    listed = set(yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed <= on_disk
    # Only the Secret template and the one-off migration Job stay out of `apply -k`.
    assert on_disk - listed == {"secret.example.yaml", "migrate-job.yaml"}


def test_container_ports_match_settings_and_config() -> None:
    assert container_ports() == PORTS
    assert int(config()["PUBLIC_PORT"]) == PORTS["public"]
    assert int(config()["PARCEL_INTERNAL_PORT"]) == PORTS["parcel"]
    assert int(config()["PARTY_INTERNAL_PORT"]) == PORTS["party"]
    # A container must listen beyond loopback for the kubelet and Services to reach it.
    assert config()["GATEWAY_HOST"] == "0.0.0.0"


def test_probes_hit_health_and_ready_on_a_declared_port() -> None:
    spec = container()
    liveness = spec["livenessProbe"]["httpGet"]
    readiness = spec["readinessProbe"]
    assert liveness["path"] == "/health"
    assert readiness["httpGet"]["path"] == "/ready"
    assert spec["startupProbe"]["httpGet"]["path"] == "/health"
    for probe in (liveness, readiness["httpGet"], spec["startupProbe"]["httpGet"]):
        assert probe["port"] in container_ports()
    # /ready answers within READY_TIMEOUT_S even when a backend hangs; the probe must
    # wait longer than that or a slow backend looks like a dead pod.
    assert readiness["timeoutSeconds"] > float(config()["READY_TIMEOUT_S"])


def test_grace_period_outlasts_the_drain() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    graceful = float(config()["GRACEFUL_TIMEOUT_S"])
    assert graceful >= FIELDS["graceful_timeout_s"].default
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + graceful


def test_requests_and_limits_are_set() -> None:
    resources = container()["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources[section].keys()


def test_services_select_the_pods_and_target_the_right_ports() -> None:
    expected = {
        "gateway-public": "public",
        "gateway-parcel-internal": "parcel",
        "gateway-party-internal": "party",
    }
    services = {d["metadata"]["name"]: d for d in manifests() if d["kind"] == "Service"}
    assert set(services) == set(expected)
    for name, audience in expected.items():
        spec = services[name]["spec"]
        assert selects_pods(spec["selector"]), name
        (port,) = spec["ports"]
        assert port["targetPort"] == audience
        assert port["port"] == PORTS[audience]
        # Internal ports never get an external address.
        assert spec.get("type", "ClusterIP") == "ClusterIP", name


def test_network_policy_admits_internal_ports_only_from_worker_namespaces() -> None:
    policy = one("NetworkPolicy")["spec"]
    assert selects_pods(policy["podSelector"]["matchLabels"])
    assert policy["policyTypes"] == ["Ingress"]
    sources_by_port: dict[str, list[dict[str, Any]]] = {name: [] for name in PORTS}
    for rule in policy["ingress"]:
        for port in rule["ports"]:
            assert port["port"] in PORTS, port
            sources_by_port[port["port"]].append(rule)

    assert any("from" not in rule for rule in sources_by_port["public"])
    for audience in ("parcel", "party"):
        namespaces = []
        for rule in sources_by_port[audience]:
            assert rule.get("from"), f"{audience} port open to every source"
            for peer in rule["from"]:
                assert peer.keys() == {"namespaceSelector"}, peer
                namespaces.append(peer["namespaceSelector"]["matchLabels"])
        assert {"tax-lien.io/worker-plane": audience} in namespaces
        other = "party" if audience == "parcel" else "parcel"
        assert {"tax-lien.io/worker-plane": other} not in namespaces


def test_autoscaler_and_disruption_budget_fit_the_deployment() -> None:
    deployment = one("Deployment")
    hpa = one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["kind"] == "Deployment"
    assert hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert 2 <= hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]
    pdb = one("PodDisruptionBudget")["spec"]
    assert selects_pods(pdb["selector"]["matchLabels"])
    assert deployment["spec"]["selector"]["matchLabels"] == pdb["selector"]["matchLabels"]
    # A budget that allows no disruption would block every node drain.
    assert pdb.get("maxUnavailable", 0) >= 1 or pdb["minAvailable"] < hpa["minReplicas"]


def test_credentials_come_from_secrets_and_config_names_real_settings() -> None:
    secret_refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"]
        for e in container()["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert secret_refs == {"REDIS_URL": "gateway-secrets", "DATABASE_URL": "gateway-secrets"}
    assert one("Secret")["metadata"]["name"] == "gateway-secrets"
    # Every ConfigMap key is a setting (catches typos that would silently be ignored),
    # and none of them is a credential.
    for key in config():
        assert key.lower() in FIELDS, key
    assert not {"REDIS_URL", "DATABASE_URL"} & config().keys()


def test_migrations_run_once_not_per_replica() -> None:
    assert config()["RUN_MIGRATIONS"] == "false"
    job = one("Job", "gateway-migrate")["spec"]["template"]["spec"]
    (migrate,) = job["containers"]
    assert migrate["args"] == ["gateway", "migrate"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kustomize_builds() -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl
    result = subprocess.run(
        [kubectl, "kustomize", str(KUBE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(result.stdout) if d]
    assert "Deployment" in kinds
    assert "Secret" not in kinds
