"""The Grafana command center: an importable model whose queries name real metrics."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import yaml

from gateway.core.audience import Audience
from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import Settings
from gateway.process.monitor import ProcessMonitor
from gateway.proxy_pool.inventory import add_proxies
from gateway.proxy_pool.service import ProxyHolder, ProxyPool
from gateway.work.models import TaskIn
from gateway.work.plane import WorkerPlane
from tests.conftest import FACTORIES, ClientFactory, app_client
from tests.monitoring.conftest import MONITORING

DASHBOARD = MONITORING / "grafana" / "dashboards" / "gateway_command_center.json"
CONTRACT = yaml.safe_load((MONITORING / "metrics.yml").read_text())["metrics"]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def model() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [p for p in model()["panels"] if p["type"] != "row"]


def contract_name(metric: str) -> str:
    """The contract entry a sample name belongs to (histogram series share one)."""
    base = HISTOGRAM_SUFFIX.sub("", metric)
    return base if base in CONTRACT else metric


def dashboard_metrics() -> set[str]:
    found = set()
    for panel in panels():
        for target in panel["targets"]:
            found |= {contract_name(m) for m, _ in SELECTOR.findall(target["expr"])}
    return found


def test_model_is_current_with_its_generator() -> None:
    result = subprocess.run(
        [sys.executable, str(MONITORING / "grafana" / "build_dashboard.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_rows_in_order() -> None:
    """The issue's four rows, with live streams and webhooks after the worker plane's
    client jobs."""
    rows = [p["title"] for p in model()["panels"] if p["type"] == "row"]
    assert rows == [
        "Public traffic",
        "Protection",
        "Worker plane",
        "Live streams",
        "Webhooks",
        "Proxy pool and runtime",
    ]


def test_panel_titles_are_unique_and_never_contain_colon_space() -> None:
    """The panel proof prints `<row> / <title>: <detail>` and its test splits at ": "."""
    titles = [p["title"] for p in panels()]
    assert len(titles) == len(set(titles))
    assert [t for t in titles if ": " in t] == []


def test_live_streams_row_shows_every_stream_metric() -> None:
    """Every live-streams series of the contract is on the dashboard."""
    streams = {name for name, spec in CONTRACT.items() if spec["plane"] == "streams"}
    assert streams
    assert streams - dashboard_metrics() == set()


def test_webhooks_row_shows_every_webhook_metric() -> None:
    """Every webhook series of the contract is on the dashboard."""
    webhooks = {name for name, spec in CONTRACT.items() if spec["plane"] == "webhooks"}
    assert len(webhooks) == 8
    assert webhooks - dashboard_metrics() == set()


def test_webhooks_row_shows_the_parcel_watch_metrics() -> None:
    watches = {name for name, spec in CONTRACT.items() if spec["plane"] == "watches"}
    assert len(watches) == 2
    assert watches - dashboard_metrics() == set()


def test_panel_ids_are_unique_and_layout_fits_the_grid() -> None:
    ids = [p["id"] for p in model()["panels"]]
    assert len(ids) == len(set(ids))
    for panel in model()["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize("panel", panels(), ids=lambda p: p["title"])
def test_panel_uses_the_datasource_variable_and_sets_a_unit(panel: dict[str, Any]) -> None:
    assert panel["datasource"] == DATASOURCE
    assert panel["fieldConfig"]["defaults"]["unit"]
    assert panel["targets"]
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE
        assert target["expr"].strip()
        selectors = SELECTOR.findall(target["expr"])
        assert selectors, target["expr"]
        for _metric, labels in selectors:
            assert 'job="gateway"' in labels, target["expr"]


def test_variables_datasource_audience_platform() -> None:
    variables = {v["name"]: v for v in model()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("audience", "platform"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE
        assert variables[name]["includeAll"] is True
        assert variables[name]["allValue"] == ".*"
    queries = " ".join(json.dumps(p["targets"]) for p in panels())
    assert "$audience" in queries
    assert "$platform" in queries


def test_every_query_names_a_contract_metric() -> None:
    unknown = dashboard_metrics() - set(CONTRACT)
    assert unknown == set(), "metrics used by the dashboard but not in monitoring/metrics.yml"


def test_cluster_gauges_are_never_summed() -> None:
    cluster = {name for name, spec in CONTRACT.items() if spec["kind"] == "cluster"}
    for panel in panels():
        for target in panel["targets"]:
            if cluster & {contract_name(m) for m, _ in SELECTOR.findall(target["expr"])}:
                assert target["expr"].startswith("max "), target["expr"]


@pytest.mark.integration
async def test_foundation_metrics_of_the_dashboard_are_exported(
    resources: Resources, client_for: ClientFactory
) -> None:
    """Every foundation metric a panel queries is in the real exposition of a port."""
    expected = {name for name in dashboard_metrics() if CONTRACT[name]["plane"] == "foundation"}
    monitor = ProcessMonitor(
        resources.metrics.runtime,
        redis=resources.redis,
        engine=resources.engine,
        probe_timeout_s=1,
    )
    async with monitor, client_for(Audience.PUBLIC) as client:
        await client.get("/ready")
        await client.get("/nope")
        text = (await client.get("/metrics")).text
    exported = {
        contract_name(line.split("{")[0].split(" ")[0])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert expected - exported == set()


def _exported(text: str) -> dict[str, list[str]]:
    """Contract metric -> the sample lines of it in a Prometheus exposition."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            found.setdefault(contract_name(line.split("{")[0].split(" ")[0]), []).append(line)
    return found


@pytest.fixture
async def routed_resources(settings: Settings) -> AsyncIterator[Resources]:
    """Resources with one Celery route at share 0, the test's Redis as broker (as the
    panel proof runs the gateway: its share gauges exist, every task stays native)."""
    assert settings.redis_url is not None
    assert settings.database_url is not None
    route = {"audience": "parcel", "platform": "*", "task": "scrape_parcel", "queue": "q"}
    routed = Settings.model_validate(
        {
            **settings.model_dump(),
            "celery_broker_url": settings.redis_url,
            "celery_broker_transport_options": {
                "global_keyprefix": settings.redis_key_prefix + "celery:"
            },
            "celery_routes": [route],
        }
    )
    async with open_resources(routed, BackendUrls(settings.redis_url, settings.database_url)) as r:
        yield r


@pytest.mark.integration
async def test_a_quiet_gateway_exports_every_series_the_dashboard_queries(
    routed_resources: Resources,
) -> None:
    """Counters and histograms with known labels are exported at 0 before any event.

    The gateway has history (a platform in each queue and in the proxy pool, as after a
    restart) but serves no request beyond the ones Prometheus and probes send.
    """
    resources = routed_resources
    platform = "quiet_county"
    for audience in (Audience.PARCEL, Audience.PARTY):
        queue = WorkerPlane.build(resources, audience).queue
        await queue.enqueue([TaskIn(platform=platform, key="k1")])
    await add_proxies(resources, ["http://u:p@127.0.0.1:9"])
    pool = ProxyPool.for_resources(resources)  # counts nothing: no audience registry
    holder = ProxyHolder(token_id=1, worker_id="w1")
    await pool.release(holder, (await pool.lease(holder, platform)).proxy_lease_id, "ok")

    monitor = ProcessMonitor(
        resources.metrics.runtime, redis=resources.redis, engine=resources.engine, probe_timeout_s=1
    )
    apps = {audience: factory(resources) for audience, factory in FACTORIES.items()}
    texts = []
    async with (
        monitor,
        app_client(apps[Audience.PUBLIC]) as public,
        app_client(apps[Audience.PARCEL]) as parcel,
        app_client(apps[Audience.PARTY]) as party,
    ):
        # One pass of each background loop, as the first interval would run it.
        for audience in (Audience.PARCEL, Audience.PARTY):
            planes = apps[audience].state.planes
            await planes["work"].reap_once()
            await planes["proxy_pool"].pool.tick()
        for client in (public, parcel, party):
            await client.get("/ready")
            texts.append((await client.get("/metrics")).text)
    exported = _exported("\n".join(texts))
    queried = {name for name in dashboard_metrics() if CONTRACT[name]["plane"] != "prometheus"}
    assert queried - set(exported) == set()
    # The series the panels select, not just the names: a platform's every outcome, each
    # auth reason, and latency of routes other than the probes.
    lines = "\n".join(texts)
    for outcome in ("succeeded", "failed_retry", "dead_lettered", "duplicate", "stale"):
        assert f'platform="{platform}",outcome="{outcome}"' in lines or (
            f'outcome="{outcome}",platform="{platform}"' in lines
        ), outcome
    assert any('handler="/v1/me"' in line for line in exported["http_request_duration_seconds"])
    assert any(
        'reason="ambiguous_credentials"' in line for line in exported["gateway_auth_failures_total"]
    )
    assert any(f'platform="{platform}"' in line for line in exported["gateway_proxy_bans_total"])
    assert any('source="in_force"' in line for line in exported["gateway_celery_route_share"])
