"""Without Celery settings nothing of Celery loads: the three apps start (lifespans
run, planes started) in a fresh interpreter, and neither celery nor kombu is imported.
With a route, the routed audience's plane loads them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from gateway.core.settings import Settings
from tests.support.celery import RABBITMQ_URL, delete_queues, require_celery

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from gateway.apps.parcel_internal import create_parcel_internal_app
    from gateway.apps.party_internal import create_party_internal_app
    from gateway.apps.public import create_public_app
    from gateway.core.resources import BackendUrls, open_resources
    from gateway.core.settings import Settings

    async def main() -> None:
        settings = Settings.model_validate(json.loads(sys.argv[1]))
        urls = BackendUrls(settings.redis_url, settings.database_url)
        async with open_resources(settings, urls) as resources:
            for factory in (create_public_app, create_parcel_internal_app,
                            create_party_internal_app):
                app = factory(resources)
                async with app.router.lifespan_context(app):
                    pass
        loaded = sorted(m for m in ("celery", "kombu") if m in sys.modules)
        print(json.dumps(loaded))

    asyncio.run(main())
    """
)


def _loaded(settings: Settings, **more: object) -> list[str]:
    values = {**settings.model_dump(mode="json"), **more}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(values)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_without_celery_settings_celery_is_never_imported(settings: Settings) -> None:
    assert _loaded(settings) == []


def test_a_routed_audience_loads_celery(settings: Settings) -> None:
    require_celery()
    tag = uuid.uuid4().hex[:10]
    route = {"audience": "party", "platform": "*", "task": "scrape_party", "queue": f"t{tag}"}
    routed = {
        "celery_broker_url": RABBITMQ_URL,
        "celery_routes": [route],
        "celery_results_queue": f"t{tag}.results",
    }
    try:
        assert _loaded(settings, **routed) == ["celery", "kombu"]
    finally:
        delete_queues(Settings.model_validate({**settings.model_dump(), **routed}))
