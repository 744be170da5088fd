"""`gateway demo` against a real embedded gateway: the sample is readable through the
public API (lookup, search, history), the demo job is done by the example worker while
its progress streams, the worker port's /metrics counts it, and a second run writes
nothing twice."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from gateway.demo import sample
from gateway.demo.live import JOB_ITEMS, job_items
from tests.support.gateway_process import GatewayProcess, start_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def embedded_gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    gw = start_gateway(tmp_path, {"DATA_DIR": str(tmp_path / "var")})
    try:
        gw.wait_ready()
        yield gw
    finally:
        assert gw.stop() == 0, gw.output()


def _env(tmp_path: Path, ports: dict[str, int]) -> dict[str, str]:
    # Another terminal of the same checkout: same DATA_DIR and ports, no backend URLs.
    return {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}},
        "DATA_DIR": str(tmp_path / "var"),
        "ENVIRONMENT": "development",
        "GATEWAY_HOST": "127.0.0.1",
        "PUBLIC_PORT": str(ports["public"]),
        "PARCEL_INTERNAL_PORT": str(ports["parcel"]),
        "PARTY_INTERNAL_PORT": str(ports["party"]),
    }


def _demo(env: dict[str, str], cwd: Path, *args: str) -> tuple[dict[str, str], str]:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "demo", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,  # bounds a failing run only
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    exports = {}
    for line in done.stdout.splitlines():
        export, assignment = line.split(" ", 1)
        assert export == "export", done.stdout
        name, value = assignment.split("=", 1)
        exports[name] = shlex.split(value)[0]
    return exports, done.stderr


def _history(gw: GatewayProcess, key: str, parcel_id: str) -> list[dict[str, object]]:
    answer = httpx.get(
        gw.url("public", f"/v1/properties/{parcel_id}/history"),
        params={"limit": 100},
        headers={"X-API-Key": key},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, object]] = answer.json()["items"]
    return items


def test_demo_shows_real_data_a_live_job_and_metrics(
    tmp_path: Path, embedded_gateway: GatewayProcess
) -> None:
    gw = embedded_gateway
    env = _env(tmp_path, gw.ports)
    exports, said = _demo(env, tmp_path)
    assert set(exports) == {"KEY", "WORKER_TOKEN", "PRODUCER_TOKEN", "PARCEL", "JOB"}
    key = exports["KEY"]
    auth = {"X-API-Key": key}
    parcels = {p["parcel_id"]: p for p in sample.parcels()}

    # The job: done by the example worker, its progress said as it streamed.
    job = httpx.get(gw.url("public", f"/v1/jobs/{exports['JOB']}"), headers=auth, timeout=10)
    assert job.status_code == 200, job.text
    assert job.json()["state"] == "completed"
    assert job.json()["progress"]["succeeded"] == JOB_ITEMS
    assert said.count("job.progress") >= 1
    assert "job.completed" in said

    # A refreshed parcel: the worker's scrape is its current row, after the sample's.
    refreshed = exports["PARCEL"]
    assert refreshed == job_items()[0]["parcel_id"]
    stored = parcels[refreshed]
    current = httpx.get(gw.url("public", f"/v1/properties/{refreshed}"), headers=auth, timeout=10)
    assert current.status_code == 200, current.text
    assert current.json()["owner_name"] == stored["owner_name"]
    last_due = Decimal(stored["snapshots"][-1]["tax_amount_due"])
    assert Decimal(current.json()["tax_amount_due"]) == (last_due * Decimal("1.015")).quantize(
        Decimal("0.01")
    )
    history = _history(gw, key, refreshed)
    assert [h["tax_amount_due"] for h in history[:-1]] == [
        s["tax_amount_due"] for s in stored["snapshots"]
    ]
    assert len(history) == len(stored["snapshots"]) + 1

    # Search finds sample parcels by state and lien status.
    found = httpx.get(
        gw.url("public", "/v1/properties/search"),
        params={"state": "FL", "lien_status": "active"},
        headers=auth,
        timeout=10,
    )
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    assert items
    assert all(i["state"] == "FL" and i["lien_status"] == "active" for i in items)

    # The worker port counted the job's results.
    metrics = httpx.get(gw.url("parcel", "/metrics"), timeout=10).text
    committed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("gateway_results_committed_total{")
    )
    assert committed >= JOB_ITEMS

    # Twice: nothing seeded again, the previous demo credentials replaced.
    untouched = next(p for p in parcels if p not in {i["parcel_id"] for i in job_items()})
    before = len(_history(gw, exports["KEY"], untouched))
    again, said = _demo(env, tmp_path, "--no-job")
    assert said.count("(0 committed now") == 2, said
    assert set(again) == {"KEY", "WORKER_TOKEN", "PRODUCER_TOKEN", "PARCEL"}
    assert len(_history(gw, again["KEY"], untouched)) == before
    # One live demo key: the first was revoked (the gateway's key cache may still admit
    # it for API_KEY_CACHE_S, so the list is what to check, not a request).
    listed = subprocess.run(
        [sys.executable, "-m", "gateway", "keys", "list", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    keys = [json.loads(line) for line in listed]
    assert sorted(k["status"] for k in keys if k["name"] == "demo") == ["active", "revoked"]
    new = httpx.get(gw.url("public", "/v1/me"), headers={"X-API-Key": again["KEY"]}, timeout=10)
    assert new.status_code == 200, new.text


def test_without_a_gateway_it_seeds_and_says_how_to_get_the_job(tmp_path: Path) -> None:
    # No gateway: the demo starts the embedded backends itself, seeds them, and says so.
    ports = {"public": 1, "parcel": 2, "party": 3}  # nothing listens there
    exports, said = _demo(_env(tmp_path, ports), tmp_path)
    assert set(exports) == {"KEY", "WORKER_TOKEN", "PRODUCER_TOKEN", "PARCEL"}
    assert "start it (`gateway serve`)" in said

    # The data is in DATA_DIR: a gateway started there serves it.
    gw = start_gateway(tmp_path, {"DATA_DIR": str(tmp_path / "var")})
    try:
        gw.wait_ready()
        parcel_id = sample.parcels()[0]["parcel_id"]
        answer = httpx.get(
            gw.url("public", f"/v1/properties/{parcel_id}"),
            headers={"X-API-Key": exports["KEY"]},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    finally:
        assert gw.stop() == 0, gw.output()
