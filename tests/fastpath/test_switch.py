"""FASTPATH=off serves through stock uvicorn, FastAPI and redis-py; on, through ours."""

from __future__ import annotations

import socket

import pytest
from fastapi import FastAPI

from gateway.apps.builder import GatewayApp
from gateway.apps.public import create_public_app
from gateway.core.resources import Resources
from gateway.fastpath.cache_hit import PropertyHitShortcut
from gateway.fastpath.one_write import OneWriteHttpToolsProtocol
from gateway.fastpath.redis_batch import ScriptBatcher, SingleCalls
from gateway.process.runner import make_server

pytestmark = pytest.mark.integration


def _layers(app: FastAPI) -> list[type]:
    if isinstance(app, GatewayApp):
        return [m.cls for m in app.front]  # type: ignore[misc]
    return [m.cls for m in app.user_middleware]  # type: ignore[misc]


@pytest.mark.parametrize("fastpath", [True, False])
async def test_the_switch_chooses_every_trick(resources: Resources, fastpath: bool) -> None:
    resources.settings = resources.settings.model_copy(update={"fastpath": fastpath})
    app = create_public_app(resources)
    assert isinstance(app, GatewayApp) is fastpath
    assert (PropertyHitShortcut in _layers(app)) is fastpath
    limiter = app.state.planes["public"].limiter
    assert isinstance(limiter._script, ScriptBatcher if fastpath else SingleCalls)
    with socket.socket() as sock:
        server = make_server(app, sock, graceful_timeout_s=1, fastpath=fastpath)
        protocol = server.config.http
        assert isinstance(protocol, type)
        assert issubclass(protocol, OneWriteHttpToolsProtocol) is fastpath


async def test_stock_limiter_answers_like_the_batcher(resources: Resources) -> None:
    """One check through each caller on the same fresh state gives the same decision."""
    from gateway.core.audience import Audience
    from gateway.core.settings.tiers import Tier
    from gateway.public.metrics import public_metrics
    from gateway.public.ratelimit import RateLimiter

    metrics = public_metrics(resources.metrics.registry(Audience.PUBLIC))
    # A refill of one token per ~17 minutes: no slow machine refills between the checks.
    tier = Tier(name="t", rate_per_s=0.001, burst=2, daily_quota=0, max_page_size=10)
    decisions = []
    for fastpath in (True, False):
        resources.settings = resources.settings.model_copy(update={"fastpath": fastpath})
        limiter = RateLimiter(resources, metrics)
        key = f"switch-{fastpath}"
        decisions.append([await limiter.check(key, tier) for _ in range(4)])
    fast, stock = decisions
    assert [d.allowed for d in fast] == [d.allowed for d in stock] == [True, True, False, False]
    assert [d.quota_used for d in fast] == [d.quota_used for d in stock]
