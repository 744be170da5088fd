"""Queue gauges follow Redis, also when Redis forgets (restart without persistence, flush)."""

from __future__ import annotations

import pytest

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.work.models import TaskIn
from gateway.work.plane import WorkerPlane
from tests.support.backends import delete_prefix

pytestmark = pytest.mark.integration


def queue_series(resources: Resources) -> list[str]:
    """The parcel port's exported queue-depth and oldest-ready samples."""
    text = resources.metrics.render(Audience.PARCEL).decode()
    names = ("gateway_queue_depth{", "gateway_queue_oldest_ready_age_seconds{")
    return [line for line in text.splitlines() if line.startswith(names)]


async def test_gauges_drop_the_tasks_redis_lost_without_a_restart(resources: Resources) -> None:
    plane = WorkerPlane(resources, "parcel")
    await plane.enqueue([TaskIn(platform="alpha", key="k-1"), TaskIn(platform="beta", key="k-2")])
    await plane.reap_once()
    exported = queue_series(resources)
    assert any('platform="alpha",state="ready"} 1.0' in line for line in exported)
    assert any("gateway_queue_oldest_ready_age_seconds{" in line for line in exported)

    # Redis loses everything (as a restart without persistence does) ...
    assert resources.settings.redis_url is not None
    await delete_prefix(resources.settings.redis_url, resources.settings.redis_key_prefix)
    await plane.reap_once()
    # ... and the next pass exports what a freshly started gateway would: no phantom work.
    assert queue_series(resources) == []

    await plane.enqueue([TaskIn(platform="beta", key="k-3")])
    await plane.reap_once()
    exported = queue_series(resources)
    assert any('platform="beta",state="ready"} 1.0' in line for line in exported)
    assert not any('platform="alpha"' in line for line in exported)
