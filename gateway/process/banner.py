"""The one block the gateway prints once every server accepts: where it listens, where
the docs are, and what to run next.

A person at a terminal (console log format) gets plain lines; a log collector (JSON) gets
one `ready` event with the same facts as fields. Either way it is said once per process,
not once per server (uvicorn's own start lines are filtered out in `gateway/core/logs.py`).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import structlog

from gateway.core.settings import LogFormat, Settings

log = structlog.get_logger("gateway.serve")


def gateway_command() -> str:
    """How the person who started this process can run the `gateway` command again."""
    found = shutil.which("gateway")
    beside = Path(sys.executable).parent / "gateway"  # the venv's console script
    if found and Path(found).resolve() == beside.resolve():
        return "gateway"  # on PATH, e.g. an activated virtualenv
    if beside.exists():
        return os.path.relpath(beside)
    return f"{os.path.relpath(sys.executable)} -m gateway"


def _url(address: tuple[str, int]) -> str:
    host, port = address
    if host in {"0.0.0.0", "::"}:
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(settings: Settings, addresses: dict[str, tuple[str, int]], fmt: LogFormat) -> None:
    """Say once that the gateway is up (`addresses`: server name -> bound host, port)."""
    urls = {name: _url(address) for name, address in addresses.items()}
    public = urls["public"]
    docs = []
    if settings.public_docs_enabled:
        docs.append(f"{public}/docs")
    if settings.internal_docs_enabled:
        docs += [f"{urls[name]}/docs" for name in ("parcel", "party")]
    command = gateway_command()
    next_step = (
        f"KEY=$({command} keys create --name me --tier {settings.default_tier}) && "
        f'curl -H "X-API-Key: $KEY" {public}/v1/me'
    )
    demo = f"{command} demo   (sample parcels, demo credentials, a live job)"
    if fmt is not LogFormat.CONSOLE:
        log.info("ready", **urls, docs=docs, next=next_step, demo=demo, embedded=settings.embedded)
        return
    lines = [
        "",
        "gateway ready"
        + (f" (embedded backends in {settings.data_dir})" if settings.embedded else ""),
        f"  public API      {public}/v1",
        f"  parcel workers  {urls['parcel']}/internal",
        f"  party workers   {urls['party']}/internal",
        f"  docs            {', '.join(docs) if docs else 'off'}; README.md for the rest",
        f"  next            {next_step}",
        f"  demo            {demo}",
        "",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
