"""A real browser follows a job: examples/job-progress.html in headless Chromium.

The real `gateway serve`, the example backend (examples/job_progress_backend.py, which
serves the page from another origin and hands it stream tickets) and Debian's Chromium
driven by Playwright; a worker completes the job's tasks over HTTP on the parcel port.
The page is checked the way its user reads it: its progress, state and event ids.

Chromium is never downloaded (no `playwright install`): `/usr/bin/chromium` comes from
Debian (scripts/test-setup.d/chromium.sh installs it when missing and root). Under
CI=true a missing browser fails these tests; elsewhere they are skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.jobs.events import EventKeys
from tests.support.gateway_process import GatewayProcess, backend_env, start_gateway
from tests.support.ports import free_port
from tests.support.public import public_app
from tests.support.tcp_proxy import TcpProxy
from tests.support.wait import wait_until, wait_until_sync
from tests.support.work import lease, make_token, parcel_data, post_results, succeeded

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).parents[2]
BACKEND = ROOT / "examples" / "job_progress_backend.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Deadlines only end a failing test: a gateway, a backend and a browser share 2 cores.
PAGE_WAIT_S = 60.0


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium: a test failure under CI=true when it is missing, else a skip."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: bash scripts/test-setup.d/chromium.sh installs it"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """Headless Chromium driven by Playwright."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Site:
    """The gateway, the example backend serving the page, and an API key of theirs.

    The browser reaches the gateway through `proxy` (so a test can cut its connections,
    at `browser_gateway`); the backend asks for tickets directly.
    """

    gateway: GatewayProcess
    proxy: TcpProxy
    backend_url: str
    key: str

    @property
    def browser_gateway(self) -> str:
        """The gateway's URL as the page reaches it."""
        return f"http://127.0.0.1:{self.proxy.port}"


def _start_backend(
    gateway_url: str, browser_gateway: str, key: str, port: int
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(BACKEND),
            "--gateway",
            gateway_url,
            "--browser-gateway",
            browser_gateway,
            "--port",
            str(port),
        ],
        # The key from the environment, as its docstring advises (not on a command line).
        env={**os.environ, "GATEWAY_API_KEY": key},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
async def site(settings: Settings, tmp_path: Path) -> AsyncIterator[Site]:
    """The gateway process (CORS for the backend's origin), the proxy in front of it for
    the browser, and the example backend."""
    async with public_app(settings) as app:
        key = await app.key(tier="pro", user="browser-user")
    backend_port = free_port()
    backend_url = f"http://127.0.0.1:{backend_port}"
    gateway = start_gateway(
        tmp_path,
        {
            **backend_env(settings),
            "RUN_MIGRATIONS": "false",
            "JOB_PLATFORMS": json.dumps({"parcel": ["alpha"]}),
            "CORS_ORIGINS": backend_url,
            "LOG_LEVEL": "warning",
        },
    )
    proxy = TcpProxy("127.0.0.1", gateway.ports["public"])
    backend: subprocess.Popen[bytes] | None = None
    try:
        await asyncio.to_thread(gateway.wait_ready)
        await proxy.start()
        backend = started = _start_backend(
            gateway.url("public", ""), f"http://127.0.0.1:{proxy.port}", key, backend_port
        )

        def serving() -> bool:
            assert started.poll() is None, "the backend exited"
            try:
                return httpx.get(f"{backend_url}/job-progress.html", timeout=5).is_success
            except httpx.HTTPError:
                return False

        await asyncio.to_thread(wait_until_sync, serving, what="the example backend serving")
        yield Site(gateway, proxy, backend_url, key)
    finally:
        await proxy.close()
        if backend is not None:
            backend.terminate()
            backend.wait(timeout=30)
        code = gateway.stop()
        assert code == 0, gateway.output()


@dataclass
class Worker:
    """Completes parcel tasks over HTTP on the gateway's parcel port."""

    client: httpx.AsyncClient
    token: str

    async def complete(self, count: int) -> None:
        """Lease `count` tasks (one at a time, so each is its own progress event) and
        post a succeeded result for each."""
        for _ in range(count):
            (task,) = await lease(self.client, self.token, limit=1)
            answer = await post_results(
                self.client, self.token, [succeeded(task, parcel_data(task["key"]))]
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["accepted"] == 1


@pytest.fixture
async def worker(site: Site, resources: Resources) -> AsyncIterator[Worker]:
    """A worker with a token of the parcel audience."""
    token = await make_token(resources, "parcel", "worker")
    async with httpx.AsyncClient(base_url=site.gateway.url("parcel", ""), timeout=30) as c:
        yield Worker(c, token)


async def submit(site: Site, items: int) -> str:
    """A parcel job of `items` items, by the site's API key; its id."""
    body = {
        "kind": "parcel_refresh",
        "items": [{"platform": "alpha", "parcel_id": f"b-{i}"} for i in range(items)],
    }
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            site.gateway.url("public", "/v1/jobs"), json=body, headers={"X-API-Key": site.key}
        )
    assert answer.status_code in (200, 201, 202), answer.text
    job_id: str = answer.json()["id"]
    return job_id


async def job_state(site: Site, job_id: str) -> str:
    """The job's state as `GET /v1/jobs/{id}` has it."""
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(
            site.gateway.url("public", f"/v1/jobs/{job_id}"), headers={"X-API-Key": site.key}
        )
    assert answer.status_code == 200, answer.text
    state: str = answer.json()["state"]
    return state


async def stream_seqs(resources: Resources, job_id: str) -> list[int]:
    """The sequence numbers in the job's event stream in Redis (entry ids `0-<seq>`)."""
    keys = EventKeys(resources.settings.redis_key_prefix)
    entries = await resources.redis.xrange(keys.stream(job_id))
    ids = [e.decode() if isinstance(e, bytes) else str(e) for e, _ in entries or []]
    return [int(entry_id.split("-")[1]) for entry_id in ids]


@dataclass
class PageView:
    """What the page shows, read by its data-testid attributes."""

    page: Page
    # The browser console's errors and warnings, for failure messages.
    console: list[str] = field(default_factory=list)
    # Every request the page made: its URL and headers.
    requests: list[str] = field(default_factory=list)

    async def text(self, testid: str) -> str:
        """The text of one element."""
        return (await self.page.get_by_test_id(testid).text_content() or "").strip()

    async def wait_text(self, testid: str, *wanted: str) -> None:
        """Wait until the element shows one of `wanted`."""

        async def shows() -> bool:
            return await self.text(testid) in wanted

        try:
            await wait_until(shows, within_s=PAGE_WAIT_S, what=f"{testid} showing {wanted}")
        except AssertionError as exc:
            shown = await self.page.get_by_test_id("log").text_content()
            raise AssertionError(f"{exc}; page log {shown!r}; console {self.console}") from None

    async def event_ids(self) -> list[int]:
        """The ids of the job events the page received, in order."""
        return [int(part) for part in (await self.text("event-ids")).split()]


async def open_page(browser: Browser, url: str) -> PageView:
    """A new page at `url`, its console errors kept for failure messages."""
    page = await browser.new_page()
    view = PageView(page)
    page.on(
        "console",
        lambda m: view.console.append(m.text) if m.type in ("error", "warning") else None,
    )
    page.on("pageerror", lambda error: view.console.append(repr(error)))
    page.on("request", lambda r: view.requests.append(f"{r.url} {r.headers}"))
    await page.goto(url)
    return view


@pytest.mark.parametrize("mode", ["backend", "key"])
async def test_the_page_follows_a_job_to_completed(
    browser: Browser,
    site: Site,
    worker: Worker,
    resources: Resources,
    mode: str,
) -> None:
    job_id = await submit(site, items=3)
    if mode == "backend":
        # The backend's front door: it fills in the gateway; the key stays on the server.
        view = await open_page(browser, f"{site.backend_url}/?job={job_id}&autostart=1")
    else:
        view = await open_page(
            browser,
            f"{site.backend_url}/job-progress.html?mode=key&gateway={site.browser_gateway}",
        )
        await view.page.get_by_test_id("job-input").fill(job_id)
        await view.page.get_by_test_id("key-input").fill(site.key)
        await view.page.get_by_test_id("follow").click()
    await view.wait_text("state", "queued")  # the snapshot arrived
    assert await view.text("status") == "live"
    assert await view.text("total") == "3"
    snapshot_id = int(await view.text("snapshot-id"))

    await worker.complete(3)

    await view.wait_text("status", "finished")
    assert await view.text("state") == "completed"
    assert (await view.text("done"), await view.text("total")) == ("3", "3")
    bar = view.page.get_by_test_id("progress")
    assert (await bar.get_attribute("value"), await bar.get_attribute("max")) == ("3", "3")
    # Every event the job's stream has after the snapshot, each once, in order.
    expected = [seq for seq in await stream_seqs(resources, job_id) if seq > snapshot_id]
    assert await view.event_ids() == expected
    assert await view.text("event-count") == str(len(expected))
    assert await view.text("last-event-id") == str(expected[-1])
    assert await view.text("duplicates") == "0"
    assert await view.text("error") == ""
    if mode == "backend":
        assert not [r for r in view.requests if site.key in r], "the key stays on the server"
        assert site.key not in await view.page.content()


async def test_the_page_resumes_after_its_connection_is_cut(
    browser: Browser, site: Site, worker: Worker, resources: Resources
) -> None:
    job_id = await submit(site, items=4)
    view = await open_page(browser, f"{site.backend_url}/?job={job_id}&autostart=1")
    await view.wait_text("state", "queued")
    snapshot_id = int(await view.text("snapshot-id"))
    await worker.complete(1)
    await view.wait_text("done", "1")

    # The browser's connection dies, and the gateway stays unreachable while the rest
    # of the job happens: those events reach the page only by resuming.
    await site.proxy.cut()

    async def noticed() -> bool:
        return int(await view.text("reconnects")) >= 1

    await wait_until(noticed, within_s=PAGE_WAIT_S, what="the page noticing the cut")
    await worker.complete(3)

    async def completed() -> bool:
        return await job_state(site, job_id) == "completed"

    await wait_until(completed, within_s=PAGE_WAIT_S, what="the job completing")
    assert await view.text("status") != "finished"
    await site.proxy.restore()

    await view.wait_text("status", "finished")
    assert await view.text("state") == "completed"
    assert (await view.text("done"), await view.text("total")) == ("4", "4")
    expected = [seq for seq in await stream_seqs(resources, job_id) if seq > snapshot_id]
    ids = await view.event_ids()
    assert ids == expected, "no event lost, none twice, in the stream's order"
    assert await view.text("duplicates") == "0"
    assert await view.text("last-event-id") == str(expected[-1])


async def test_a_job_the_key_cannot_watch_stops_the_page_with_the_reason(
    browser: Browser, site: Site
) -> None:
    async with httpx.AsyncClient(base_url=site.backend_url, timeout=30) as backend:
        malformed = await backend.post("/ticket", params={"job": "not-a-job"})
        assert malformed.status_code == 400
        assert malformed.headers["content-type"] == "application/problem+json"
        # The gateway's own problem, passed through: no such job of this key's.
        unknown = await backend.post("/ticket", params={"job": "job_" + "0" * 24})
        assert unknown.status_code == 404, unknown.text
        assert unknown.headers["content-type"].startswith("application/problem+json")

    view = await open_page(browser, f"{site.backend_url}/?job=job_{'0' * 24}&autostart=1")
    await view.wait_text("status", "stopped")
    assert (await view.text("error")).startswith("ticket: 404")
    assert await view.text("reconnects") == "0"
