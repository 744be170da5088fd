"""The live part of the demo: a refresh job on the running gateway, done by the example
parcel worker, followed over the job's event stream.

It talks to the gateway over HTTP as any client and worker would (the job is created
with the demo key, the worker leases with the demo worker token), so the gateway's own
`/metrics`, logs and job events show it. The worker is `examples/parcel_worker.py` of
the checkout, run as a subprocess with `--parcels` pointing at the sample: its fake
scrape then answers from the sample, as a county site would, with the interest accrued
since the last scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.core.settings import Settings
from gateway.demo import sample
from gateway.kit.cli_errors import CliError

EXAMPLE_WORKER = Path(__file__).resolve().parents[2] / "examples" / "parcel_worker.py"
JOB_ITEMS = 12
# How long the job may take before the demo gives up (a dozen 0.5 s fake scrapes, two
# at a time, take about 3 s; the rest is room for a busy machine).
JOB_TIMEOUT_S = 120.0
TERMINAL = {
    "job.completed",
    "job.partially_failed",
    "job.failed",
    "job.cancelled",
    "job.expired",
}


@dataclass(frozen=True)
class Urls:
    """Where the running gateway listens (from the same settings it was started with)."""

    public: str
    parcel: str


@dataclass(frozen=True)
class JobRun:
    """How the demo job ended."""

    job_id: str
    state: str
    progress: dict[str, int]


def urls(settings: Settings) -> Urls:
    """The gateway's public and parcel URLs on this machine."""
    host = settings.gateway_host
    if host in {"0.0.0.0", "::", ""}:
        host = "127.0.0.1"
    base = f"http://[{host}]" if ":" in host else f"http://{host}"
    return Urls(f"{base}:{settings.public_port}", f"{base}:{settings.parcel_internal_port}")


async def running(client: httpx.AsyncClient, at: Urls) -> bool:
    """True when the public and parcel ports both answer `/ready` with 200."""
    for base in (at.public, at.parcel):
        try:
            response = await client.get(f"{base}/ready", timeout=5)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
    return True


def job_items() -> list[dict[str, str]]:
    """The parcels the demo refreshes: the first sample parcels with a live lien."""
    chosen = [p for p in sample.parcels() if p["snapshots"][-1]["lien_status"] == "active"]
    return [{"platform": p["platform"], "parcel_id": p["parcel_id"]} for p in chosen[:JOB_ITEMS]]


async def run_job(
    client: httpx.AsyncClient,
    at: Urls,
    api_key: str,
    worker_token: str,
    log_path: Path,
    say: Callable[[str], None],
) -> JobRun:
    """Create the refresh job, run the example worker until the job ends, stop it."""
    if not EXAMPLE_WORKER.exists():
        raise CliError(
            f"{EXAMPLE_WORKER} is not there (the demo job needs a checkout of the repository)"
        )
    items = job_items()
    created = await client.post(
        f"{at.public}/v1/jobs",
        headers={"X-API-Key": api_key},
        json={"kind": "parcel_refresh", "label": "gateway demo", "items": items},
        timeout=30,
    )
    if created.status_code != 201:
        raise CliError(f"POST /v1/jobs answered {created.status_code}: {_detail(created)}")
    job_id = str(created.json()["id"])
    say(f"job {job_id}: {len(items)} parcels to refresh; starting the example parcel worker")
    platforms = ",".join(sorted({i["platform"] for i in items}))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        worker = await asyncio.create_subprocess_exec(
            *[
                sys.executable,
                str(EXAMPLE_WORKER),
                "--gateway",
                at.parcel,
                "--platforms",
                platforms,
                "--worker-id",
                "demo-worker",
                "--parcels",
                str(sample.PARCELS_FILE),
                "--concurrency",
                "2",
                "--delay",
                "0.5",
                "--wait",
                "1",  # stopping waits for the last long-poll: keep it short
            ],
            env={**os.environ, "WORKER_TOKEN": worker_token},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        follow = asyncio.ensure_future(_follow(client, at, api_key, job_id, say))
        exited = asyncio.ensure_future(worker.wait())
        done, _ = await asyncio.wait(
            {follow, exited}, timeout=JOB_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if follow in done:
            return follow.result()
        follow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow
        if exited in done:
            raise CliError(
                f"the example worker exited with {worker.returncode} before the job ended: "
                f"{_tail(log_path)} (all of it in {log_path})"
            )
        raise CliError(f"job {job_id} did not end within {JOB_TIMEOUT_S:.0f} s (see {log_path})")
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)  # finishes in-flight tasks, then exits
            try:
                await asyncio.wait_for(worker.wait(), 30)
            except TimeoutError:
                worker.kill()
                await worker.wait()


async def _follow(
    client: httpx.AsyncClient, at: Urls, api_key: str, job_id: str, say: Callable[[str], None]
) -> JobRun:
    """Read the job's Server-Sent Events until its terminal event, saying each step."""
    event = ""
    last: dict[str, Any] = {}
    async with client.stream(
        "GET",
        f"{at.public}/v1/jobs/{job_id}/events",
        headers={"X-API-Key": api_key},
        timeout=httpx.Timeout(30, read=JOB_TIMEOUT_S),
    ) as stream:
        if stream.status_code != 200:
            await stream.aread()
            raise CliError(f"the job's event stream answered {stream.status_code}")
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                body = json.loads(line.removeprefix("data:"))
                data = body if event == "snapshot" else body.get("data", {})
                last = {"state": data.get("state", ""), "progress": data.get("progress", {})}
                p = last["progress"]
                say(
                    f"  {event:<18} {last['state']:<10} "
                    f"{p.get('succeeded', 0)}/{p.get('total', 0)} succeeded, "
                    f"{p.get('pending', 0)} pending"
                )
                if event in TERMINAL or (event == "snapshot" and data.get("finished_at")):
                    return JobRun(job_id, str(last["state"]), dict(last["progress"]))
    raise CliError(f"the event stream of job {job_id} ended before the job did")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("detail") or body.get("title") or body)[:300]


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no output)"
