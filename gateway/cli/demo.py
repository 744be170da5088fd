"""`gateway demo`: seed the sample, issue demo credentials, run a live refresh job.

stdout carries only shell `export` lines (`eval "$(gateway demo)"` sets `KEY`,
`WORKER_TOKEN`, `PRODUCER_TOKEN`, `PARCEL` and `JOB`); what it did and what to try next goes to
stderr. Without a running gateway it seeds and issues credentials, and says how to get
the live job.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING

from gateway.kit.cli_runner import run_with_resources

if TYPE_CHECKING:
    from gateway.core.resources import BackendUrls, Resources
    from gateway.core.settings import Settings
    from gateway.demo.live import Urls


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` subcommand."""
    parser = sub.add_parser(
        "demo",
        help="seed sample parcels and parties, print demo credentials, run a live job",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--no-job",
        action="store_true",
        help="only seed and issue credentials (no job, no worker)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for the gateway to answer /ready (scripts/run.sh --demo)",
    )
    parser.set_defaults(handler=_run)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _migrate(settings: Settings, urls: BackendUrls) -> None:
    """Migrate where `serve` would (`RUN_MIGRATIONS`, on by default outside production):
    the demo may be a newcomer's first command on a fresh `DATA_DIR`."""
    from gateway.migrations.runner import upgrade_to_head

    if settings.migrate_on_start:
        upgrade_to_head(urls.database_url)


def _wait_for_gateway(seconds: float) -> None:
    """Block until the gateway answers, before any backend is opened: started beside a
    gateway that is still starting, the demo must use its backends, not start its own."""
    import asyncio

    import httpx

    from gateway.core.settings import load_settings
    from gateway.demo import live
    from gateway.kit.cli_errors import CliError

    at = live.urls(load_settings())

    async def poll() -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        async with httpx.AsyncClient() as client:
            while loop.time() < deadline:
                if await live.running(client, at):
                    return True
                await asyncio.sleep(0.5)
        return False

    if not asyncio.run(poll()):
        raise CliError(f"no gateway answered at {at.public} within {seconds:.0f} s")


def _run(args: argparse.Namespace) -> int:
    if args.wait > 0:
        _wait_for_gateway(args.wait)

    async def work(resources: Resources) -> int:
        import httpx

        from gateway.demo import credentials, live, seed

        seeded = await seed.seed(resources)
        for s in seeded:
            kind = "parcels" if s.audience == "parcel" else "parties"
            _say(
                f"gateway demo: {s.records} sample {kind}, {s.scrapes} scrapes "
                f"({s.written} committed now through the results path, "
                f"{s.scrapes - s.written} there already)"
            )
        creds = await credentials.issue(resources)
        at = live.urls(resources.settings)
        # Printed at once: the earlier demo credentials are revoked already, so these must
        # reach the caller even if the job below fails.
        _export(
            KEY=creds.api_key,
            WORKER_TOKEN=creds.worker_token,
            PRODUCER_TOKEN=creds.producer_token,
            # A sample parcel with history, one the job refreshes.
            PARCEL=live.job_items()[0]["parcel_id"],
        )
        _say(
            f"demo API key (tier {creds.tier}) and parcel worker and producer tokens issued "
            "(earlier demo ones revoked); the exports are on stdout"
        )
        job = False
        async with httpx.AsyncClient() as client:
            if args.no_job:
                pass
            elif not await live.running(client, at):
                _say(
                    f"no gateway answers at {at.public} and {at.parcel}: start it "
                    "(`gateway serve`) and run `gateway demo` again for the live job"
                )
            else:
                run = await live.run_job(
                    client,
                    at,
                    creds.api_key,
                    creds.worker_token,
                    resources.settings.data_dir / "demo-worker.log",
                    _say,
                )
                _export(JOB=run.job_id)
                job = True
                _say(f"job {run.job_id} {run.state}")
        for line in _next_steps(at, job):
            _say(line)
        return 0

    return run_with_resources(work, prepare=_migrate)


def _export(**values: str) -> None:
    for name, value in values.items():
        print(f"export {name}={shlex.quote(value)}")
    sys.stdout.flush()


def _next_steps(at: Urls, job: bool) -> list[str]:
    auth = '-H "X-API-Key: $KEY"'
    lines = [
        'try (after `eval "$(gateway demo)"`, or with the exports above):',
        f"  curl {auth} {at.public}/v1/properties/$PARCEL",
        f"  curl {auth} {at.public}/v1/properties/$PARCEL/history",
        f"  curl {auth} '{at.public}/v1/properties/search?state=FL&lien_status=active'",
    ]
    if job:
        lines += [
            f"  curl {auth} {at.public}/v1/jobs/$JOB",
            f"  curl -N {auth} {at.public}/v1/jobs/$JOB/events",
        ]
    lines.append(f"  curl -s {at.parcel}/metrics | grep '^gateway_results_committed_total'")
    return lines
