"""Worker, task and principal ids on every log line of a request, and only that request."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import structlog
from fastapi import APIRouter

from gateway.apps.builder import build_app
from gateway.core.audience import Audience
from gateway.core.logs import configure_logging
from gateway.core.observability.log_context import (
    bind_principal,
    bind_task,
    bind_worker,
    log_context,
)
from gateway.core.resources import Resources
from gateway.core.settings import LogFormat, Settings
from tests.conftest import app_client
from tests.support import work
from tests.support.audit import TEST_ACTOR
from tests.support.public import public_app

pytestmark = pytest.mark.integration

log = structlog.get_logger("tests.log_context")
router = APIRouter()


@router.post("/internal/lease")
async def lease() -> dict[str, str]:
    bind_worker("worker-7", platform="county-a")
    log.info("task_leased")
    bind_task("task-42", lease_id="lease-9")
    log.info("lease_granted")
    return {"ok": "yes"}


@router.get("/v1/parcels")
async def parcels() -> dict[str, str]:
    bind_principal("uid-123", tier="pro")
    log.info("served")
    return {"ok": "yes"}


@router.get("/v1/anonymous")
async def anonymous() -> dict[str, str]:
    log.info("served_anonymously")
    return {"ok": "yes"}


@pytest.fixture
def json_logs() -> Iterator[Callable[[], None]]:
    """Switches production JSON logging on (call it inside the test, where capsys
    captures); the previous logging state is restored afterwards.

    Caching is switched off so module-level loggers (the request middleware's) do not
    keep this configuration after the test.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def start() -> None:
        configure_logging("info", LogFormat.JSON)
        structlog.configure(cache_logger_on_first_use=False)

    yield start
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def client(resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(audience=Audience.PUBLIC, resources=resources, title="t", routers=[router])
    async with app_client(app) as c:
        yield c


def lines(out: str) -> dict[str, dict[str, object]]:
    """Log lines by event name (the last one wins) plus request lines by route."""
    found: dict[str, dict[str, object]] = {}
    for raw in out.splitlines():
        if raw.startswith("{"):
            line = json.loads(raw)
            key = f"request {line['route']}" if line["event"] == "request" else line["event"]
            found[str(key)] = line
    return found


async def test_worker_task_and_lease_ids_reach_every_later_line(
    client: httpx.AsyncClient,
    json_logs: Callable[[], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    json_logs()
    await client.post("/internal/lease", headers={"X-Request-ID": "req-1"})
    found = lines(capsys.readouterr().out)

    assert found["task_leased"]["worker_id"] == "worker-7"
    assert found["task_leased"]["platform"] == "county-a"
    assert "task_id" not in found["task_leased"]
    for event in ("lease_granted", "request /internal/lease"):
        line = found[event]
        assert line["request_id"] == "req-1"
        assert line["worker_id"] == "worker-7"
        assert line["task_id"] == "task-42"
        assert line["lease_id"] == "lease-9"


async def test_principal_and_tier_end_with_the_request(
    client: httpx.AsyncClient,
    json_logs: Callable[[], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    json_logs()
    await client.get("/v1/parcels")
    await client.get("/v1/anonymous")
    found = lines(capsys.readouterr().out)

    for event in ("served", "request /v1/parcels"):
        assert found[event]["principal_id"] == "uid-123"
        assert found[event]["tier"] == "pro"
    # The next request in the same task (as in-process clients run them) is clean.
    for event in ("served_anonymously", "request /v1/anonymous"):
        assert "principal_id" not in found[event]
        assert "tier" not in found[event]


def test_log_context_binds_for_a_block_only(
    json_logs: Callable[[], None], capsys: pytest.CaptureFixture[str]
) -> None:
    json_logs()
    with log_context(task_id="task-1", lease_id=None):
        log.info("inside")
    log.info("outside")
    found = lines(capsys.readouterr().out)
    assert found["inside"]["task_id"] == "task-1"
    assert "lease_id" not in found["inside"]
    assert "task_id" not in found["outside"]


async def test_public_requests_carry_the_principal_that_made_them(
    settings: Settings,
    json_logs: Callable[[], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with public_app(settings) as app:
        issued = await app.plane.api_keys.create(
            name="logs", tier="free", user_uid="alice", actor=TEST_ACTOR
        )
        json_logs()
        served = await app.client.get("/v1/me", headers={"X-API-Key": issued.secret})
        refused = await app.client.get("/v1/me", headers={"X-API-Key": "tlk_nope_nope"})
    requests = [
        line
        for raw in capsys.readouterr().out.splitlines()
        if raw.startswith("{") and (line := json.loads(raw))["event"] == "request"
    ]
    assert (served.status_code, refused.status_code) == (200, 401)
    assert [line["status"] for line in requests] == [200, 401]
    assert requests[0]["principal_id"] == issued.row.id
    assert requests[0]["tier"] == "free"
    assert "principal_id" not in requests[1]  # nobody authenticated


async def test_worker_requests_carry_the_worker_id(
    settings: Settings,
    json_logs: Callable[[], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with work.work_app(settings) as (resources, client):
        token = await work.make_token(resources, role="worker")
        json_logs()
        beat = await client.post(
            "/internal/heartbeat", json={"worker_id": "parser-9"}, headers={"X-Worker-Token": token}
        )
        leased = await work.lease(client, token, worker_id="parser-9")
    found = lines(capsys.readouterr().out)
    assert beat.status_code == 200, beat.text
    assert leased == []
    assert found["request /internal/heartbeat"]["worker_id"] == "parser-9"
    assert found["request /internal/work"]["worker_id"] == "parser-9"
