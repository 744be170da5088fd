"""Prove every panel of the command center against a real Prometheus and a real gateway.

One command (Redis and PostgreSQL from REDIS_URL / DATABASE_URL or the flags):

    .venv/bin/python monitoring/prove_dashboard.py

What it does, in order:
1. creates a throw-away PostgreSQL database and Redis key prefix;
2. starts the real `gateway serve` as a subprocess on free ports (it migrates the new
   database at start), pointed at a fake upstream (monitoring/proof_traffic.py);
3. starts Debian's `prometheus` on a free port with a temporary copy of the project's
   prometheus.yml: targets rewritten to the gateway's ports, 1 s scrape and rule
   evaluation, and the project's alert rules;
4. drives traffic from every source in proof_traffic.py while Prometheus scrapes
   (a live-streams source follows jobs over real SSE streams of the public port);
5. evaluates every target query of every panel of the dashboard JSON through
   Prometheus's HTTP API (`$__rate_interval` and the variables substituted as Grafana
   would with "All" selected) and prints one line per panel:
       OK <row> / <panel>: <n> series
       MISSING <row> / <panel>: no series for <metric> (<plane>)
   and checks that every alert rule is loaded and evaluates without error.

Exit code 0 only when every panel returned series. With --allow-pending, panels whose
missing metrics all belong to a plane whose traffic hook is not filled in yet are still
printed as MISSING (marked pending) but do not fail the run; once the hooks are filled
in nothing is pending and the check is strict again.

With --quiet there is no traffic: a healthy system at rest. The proof seeds what "once
seen" needs (one task per internal port and one proxy lease, so one platform exists),
evaluates until every query has a value (or --quiet-deadline passes), and prints one
line per panel query:
       OK <row> / <panel> [<refId>]: <n> values
       EMPTY <row> / <panel> [<refId>]: no value
A query "has a value" when at least one series it returns is a number (a quantile of
no observations is NaN, which Grafana draws as nothing). Exit code 0 only when every
query has a value.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import proof_traffic
import yaml
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DASHBOARD = HERE / "grafana" / "dashboards" / "gateway_command_center.json"
CONTRACT = yaml.safe_load((HERE / "metrics.yml").read_text())["metrics"]
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")
# How Prometheus's JSON API spells a sample that is not a number.
_NOT_A_NUMBER = frozenset({"NaN", "+Inf", "-Inf"})
AUDIENCE_PORTS = {
    "public": "PUBLIC_PORT",
    "parcel": "PARCEL_INTERNAL_PORT",
    "party": "PARTY_INTERNAL_PORT",
}


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _tail(log: Path) -> str:
    return (await asyncio.to_thread(log.read_text, errors="replace"))[-4000:]


async def wait_http(url: str, timeout_s: float, proc: Process, log: Path) -> None:
    """Poll `url` until it answers 200, or exit with the process log."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                sys.exit(f"{url}: process exited with {proc.returncode}:\n{await _tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    sys.exit(f"{url} not ready after {timeout_s}s:\n{await _tail(log)}")


async def spawn(argv: list[str], log: Path, **kwargs: Any) -> Process:
    """Start a process with stdout and stderr going to `log`."""
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, **kwargs
        )


async def stop(proc: Process) -> None:
    """SIGTERM, then SIGKILL if it does not stop within 15 s."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# --- backends -------------------------------------------------------------------------


def _admin_dsn(database_url: str) -> str:
    url = make_url(database_url).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def scratch_backends(redis_url: str, database_url: str) -> AsyncIterator[tuple[str, str]]:
    """A new database on the server of `database_url` and a new Redis key prefix."""
    name = f"gwproof_{uuid.uuid4().hex[:10]}"
    prefix = f"gwproof:{uuid.uuid4().hex[:8]}:"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_admin_dsn(database_url), timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def drop_prefix() -> None:
        redis = Redis.from_url(redis_url)
        try:
            keys = [key async for key in redis.scan_iter(match=prefix + "*", count=1000)]
            if keys:
                await redis.unlink(*keys)
        finally:
            await redis.aclose()

    await admin(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
        yield url, prefix
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await drop_prefix()


# --- processes ------------------------------------------------------------------------


@dataclass
class Gateway:
    """The running gateway subprocess."""

    proc: Process
    ports: dict[str, int]
    log: Path


@contextlib.asynccontextmanager
async def gateway(workdir: Path, env: dict[str, str]) -> AsyncIterator[Gateway]:
    """`gateway serve` on free ports until the block ends."""
    ports = {audience: free_port() for audience in AUDIENCE_PORTS}
    full_env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "GATEWAY_HOST": "127.0.0.1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "warning",
        "GRACEFUL_TIMEOUT_S": "5",
        **{AUDIENCE_PORTS[a]: str(p) for a, p in ports.items()},
        **env,
    }
    log = workdir / "gateway.log"
    proc = await spawn([sys.executable, "-m", "gateway", "serve"], log, env=full_env, cwd=workdir)
    try:
        for port in ports.values():
            await wait_http(f"http://127.0.0.1:{port}/ready", 60, proc, log)
        yield Gateway(proc, ports, log)
    finally:
        await stop(proc)


def prometheus_config(ports: dict[str, int], scrape_s: int) -> dict[str, Any]:
    """The project's prometheus.yml, pointed at this gateway and this checkout's rules."""
    config: dict[str, Any] = yaml.safe_load((ROOT / "prometheus.yml").read_text())
    interval = f"{scrape_s}s"
    config["global"].update(
        scrape_interval=interval, evaluation_interval=interval, scrape_timeout=interval
    )
    config["rule_files"] = [str(HERE / "prometheus" / "alerts.yml")]
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] != "gateway":
            continue  # Prometheus's self-scrape is not part of the proof
        for group in job["static_configs"]:
            audience = group["labels"]["audience"]
            group["targets"] = [f"127.0.0.1:{ports[audience]}"]
        jobs.append(job)
    config["scrape_configs"] = jobs
    return config


@contextlib.asynccontextmanager
async def prometheus(
    binary: str, workdir: Path, ports: dict[str, int], scrape_s: int
) -> AsyncIterator[str]:
    """Debian's prometheus on a free port; yields its base URL."""
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(ports, scrape_s)))
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    proc = await spawn(argv, workdir / "prometheus.log")
    log = workdir / "prometheus.log"
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{url}/-/ready", 30, proc, log)
        yield url
    finally:
        await stop(proc)


# --- traffic --------------------------------------------------------------------------


async def drive(ctx: proof_traffic.TrafficContext, seconds: float) -> None:
    """Run every filled-in source once per round until `seconds` have passed, then
    each source's `stop` (what its rounds left running, such as open streams)."""
    sources = [s for s in proof_traffic.sources() if s.run is not None]
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            await asyncio.gather(*(s.run(ctx) for s in sources if s.run is not None))
            ctx.round += 1
            await asyncio.sleep(0.2)
    finally:
        for source in sources:
            if source.stop is not None:
                await source.stop(ctx)


async def wait_targets_up(client: httpx.AsyncClient, prom: str, expected: int) -> None:
    """Until Prometheus has scraped every gateway port successfully."""
    for _ in range(150):
        data = (await client.get(f"{prom}/api/v1/targets")).json()["data"]["activeTargets"]
        if sum(1 for t in data if t["health"] == "up") >= expected:
            return
        await asyncio.sleep(0.2)
    sys.exit(f"Prometheus never scraped all gateway ports: {json.dumps(data)[:2000]}")


# --- evaluation -----------------------------------------------------------------------


def substitute(expr: str, rate_interval: str) -> str:
    """The query Grafana would send with every variable at "All"."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$audience", ".*")
        .replace("$platform", ".*")
    )


def metric_of(name: str) -> str:
    """The contract entry a sample name belongs to."""
    base = HISTOGRAM_SUFFIX.sub("", name)
    return base if base in CONTRACT else name


@dataclass
class PanelResult:
    """The outcome of one panel: series per target, and what is missing."""

    row: str
    title: str
    series: list[int]
    missing: dict[str, str]  # metric -> plane, for metrics with no series at all
    errors: list[str]
    refs: list[str] = field(default_factory=list)  # target refIds, in `series` order
    values: list[int] = field(default_factory=list)  # series per target that are numbers

    @property
    def ok(self) -> bool:
        return not self.errors and all(self.series)

    @property
    def name(self) -> str:
        return f"{self.row} / {self.title}"


async def evaluate(client: httpx.AsyncClient, prom: str, rate_interval: str) -> list[PanelResult]:
    """Run every panel's queries; report series counts and metrics without series."""

    async def query(expr: str) -> tuple[int, int, str | None]:
        response = await client.get(f"{prom}/api/v1/query", params={"query": expr})
        body = response.json()
        if body.get("status") != "success":
            return 0, 0, f"{body.get('errorType')}: {body.get('error')}"
        found = body["data"]["result"]
        numbers = sum(1 for series in found if series["value"][1] not in _NOT_A_NUMBER)
        return len(found), numbers, None

    results = []
    row = ""
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        result = PanelResult(row, panel["title"], [], {}, [])
        for target in panel["targets"]:
            expr = substitute(target["expr"], rate_interval)
            count, numbers, error = await query(expr)
            result.series.append(count)
            result.refs.append(target["refId"])
            result.values.append(numbers)
            if error:
                result.errors.append(f"{target['refId']}: {error}")
            if count == 0:
                for name in sorted(set(SELECTOR.findall(expr))):
                    present, _, _ = await query(f'count({{__name__="{name}"}})')
                    if not present:
                        metric = metric_of(name)
                        result.missing[metric] = CONTRACT.get(metric, {}).get("plane", "?")
        results.append(result)
    return results


async def check_rules(client: httpx.AsyncClient, prom: str) -> tuple[bool, str]:
    """Every alert of alerts.yml is loaded and evaluated without error."""
    expected = {
        rule["alert"]
        for group in yaml.safe_load((HERE / "prometheus" / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    for _ in range(50):
        groups = (await client.get(f"{prom}/api/v1/rules")).json()["data"]["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"] if r["type"] == "alerting"}
        if set(rules) >= expected and all(r["health"] == "ok" for r in rules.values()):
            return True, f"OK rules: {len(rules)} alerting rules loaded and evaluating"
        await asyncio.sleep(0.2)
    bad = {
        name: r.get("lastError") or r["health"] for name, r in rules.items() if r["health"] != "ok"
    }
    return False, f"FAILED rules: missing {sorted(expected - set(rules))}, unhealthy {bad}"


def report(results: list[PanelResult], allow_pending: bool) -> int:
    """Print one line per panel; return the number of failures that count."""
    unfilled = {s.plane for s in proof_traffic.sources() if s.run is None}
    failures = 0
    for result in results:
        if result.ok:
            print(f"OK {result.name}: {sum(result.series)} series")
            continue
        pending = bool(result.missing) and set(result.missing.values()) <= unfilled
        note = " (pending: traffic hook not filled in)" if pending else ""
        if result.errors:
            print(f"ERROR {result.name}: {'; '.join(result.errors)}")
        elif result.missing:
            detail = ", ".join(f"{m} ({plane})" for m, plane in result.missing.items())
            print(f"MISSING {result.name}: no series for {detail}{note}")
        else:
            counts = ", ".join(map(str, result.series))
            print(f"MISSING {result.name}: queries returned no series (per target: {counts})")
        if not (pending and allow_pending):
            failures += 1
    return failures


async def quiet_results(
    client: httpx.AsyncClient, prom: str, args: argparse.Namespace
) -> list[PanelResult]:
    """Evaluate until every query has a value, or `--quiet-deadline` seconds passed.

    A rate needs two scrapes of a series inside its window, and the gateway's loops
    declare a platform's series on their first pass: how long that takes depends on the
    machine, so this waits for the answer instead of a fixed time.
    """
    deadline = time.monotonic() + args.quiet_deadline
    while True:
        results = await evaluate(client, prom, args.rate_interval)
        complete = all(all(result.values) for result in results)
        if complete or time.monotonic() >= deadline:
            return results
        await asyncio.sleep(args.scrape_seconds)


def report_quiet(results: list[PanelResult]) -> int:
    """One line per panel query of a quiet system; return how many had no value."""
    empty = 0
    for result in results:
        for ref, numbers in zip(result.refs, result.values, strict=True):
            if numbers:
                print(f"OK {result.name} [{ref}]: {numbers} values")
            else:
                empty += 1
                print(f"EMPTY {result.name} [{ref}]: no value")
    total = sum(len(result.refs) for result in results)
    blank = sum(1 for result in results if not any(result.values))
    print(f"{total - empty}/{total} panel queries with a value on a quiet system; {empty} empty")
    print(f"{len(results) - blank}/{len(results)} panels with a value; {blank} show no data")
    return empty


async def run_proof(
    args: argparse.Namespace,
    gw: Gateway,
    prom: str,
    upstream: proof_traffic.FakeUpstream,
    database_url: str,
    prefix: str,
) -> int:
    """Traffic, then evaluation; returns the process exit code."""
    async with httpx.AsyncClient(timeout=10) as client:
        await wait_targets_up(client, prom, expected=len(gw.ports))
        ctx = proof_traffic.TrafficContext(
            client=client,
            ports=gw.ports,
            upstream=upstream,
            redis_url=args.redis_url,
            redis_key_prefix=prefix,
            database_url=database_url,
        )
        if args.quiet:
            await proof_traffic.seed_quiet(ctx)
            results = await quiet_results(client, prom, args)
            return 0 if report_quiet(results) == 0 else 1
        await drive(ctx, args.traffic_seconds)
        # Let the last round be scraped and the rules evaluated on it.
        await asyncio.sleep(args.scrape_seconds * 3)
        results = await evaluate(client, prom, args.rate_interval)
        rules_ok, rules_line = await check_rules(client, prom)
    failures = report(results, args.allow_pending)
    print(rules_line)
    passed = sum(1 for r in results if r.ok)
    print(f"{passed}/{len(results)} panels with data; {failures} failing")
    return 0 if failures == 0 and rules_ok else 1


async def _with_upstream(args: argparse.Namespace, workdir: Path, binary: str) -> int:
    upstream = proof_traffic.FakeUpstream()
    async with (
        upstream.running(),
        scratch_backends(args.redis_url, args.database_url) as (database_url, prefix),
    ):
        env = {
            "REDIS_URL": args.redis_url,
            "DATABASE_URL": database_url,
            "REDIS_KEY_PREFIX": prefix,
            "PARSER_SERVICE_URL": upstream.url,
        }
        for source in proof_traffic.sources():
            env.update(
                {
                    k: v.replace("$REDIS_URL", args.redis_url).replace("$PREFIX", prefix)
                    for k, v in source.env.items()
                }
            )
        async with (
            gateway(workdir, env) as gw,
            prometheus(binary, workdir, gw.ports, args.scrape_seconds) as prom,
        ):
            return await run_proof(args, gw, prom, upstream, database_url, prefix)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the proof, return the exit code."""
    parser = argparse.ArgumentParser(description="Prove every dashboard panel has data.")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        help="any database on the server; the proof creates and drops its own",
    )
    parser.add_argument(
        "--prometheus", default=shutil.which("prometheus"), help="prometheus binary"
    )
    parser.add_argument("--traffic-seconds", type=float, default=12.0)
    parser.add_argument("--scrape-seconds", type=int, default=1)
    parser.add_argument("--rate-interval", default="20s", help="substituted for $__rate_interval")
    parser.add_argument(
        "--allow-pending",
        action="store_true",
        help="panels waiting for an unfilled traffic hook do not fail the run",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no traffic: every panel query must have a value on a system at rest",
    )
    parser.add_argument(
        "--quiet-deadline",
        type=float,
        default=60.0,
        help="with --quiet: seconds to wait for every query to have a value",
    )
    args = parser.parse_args(argv)
    if not args.prometheus:
        print("prometheus not found: run monitoring/ensure_tools.sh", file=sys.stderr)
        return 2
    pending = [s for s in proof_traffic.sources() if s.run is None]
    for source in pending:
        print(f"HOOK {source.plane}: traffic hook not filled in ({source.description})")
    with tempfile.TemporaryDirectory(prefix="gwproof-") as tmp:
        return asyncio.run(_with_upstream(args, Path(tmp), args.prometheus))


if __name__ == "__main__":
    sys.exit(main())
