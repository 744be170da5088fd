"""Routes and runtime shares: the most specific route wins, shares set at runtime
reach another process's router within its refresh, and who/when is recorded."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from gateway.audit.actor import Actor
from gateway.audit.service import AuditLog
from gateway.core.errors import InvalidInput
from gateway.core.resources import Resources
from gateway.core.settings import Settings
from gateway.core.settings.celery import CeleryRoute
from gateway.work.models import TaskIn
from gateway.work.routing.router import NATIVE, CeleryRouter
from gateway.work.routing.service import RoutingService
from gateway.work.routing.shares import SharesCache, ShareStore
from tests.support.audit import TEST_ACTOR, audit_rows, offline_audit
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

ROUTES = [
    CeleryRoute(audience="parcel", platform="alpha", share=1.0, task="scrape_parcel"),
    CeleryRoute(
        audience="parcel", platform="alpha", kind="producer", share=0.0, task="bulk", queue="b"
    ),
    CeleryRoute(audience="parcel", platform="*", share=0.0, task="any_parcel"),
]


def _router(redis: Redis, prefix: str, refresh_s: float = 0.5) -> CeleryRouter:
    return CeleryRouter(ROUTES, SharesCache(ShareStore(redis, prefix + "celery:shares"), refresh_s))


def test_the_most_specific_route_wins() -> None:
    router = CeleryRouter(ROUTES, SharesCache(ShareStore(None, "x")))  # type: ignore[arg-type]
    assert router.route_for("parcel", "alpha", "producer").id == "parcel/alpha/producer"  # type: ignore[union-attr]
    assert router.route_for("parcel", "alpha", "parcel_refresh").id == "parcel/alpha"  # type: ignore[union-attr]
    assert router.route_for("parcel", "alpha", None).id == "parcel/alpha"  # type: ignore[union-attr]
    assert router.route_for("parcel", "beta", None).id == "parcel/*"  # type: ignore[union-attr]
    assert router.route_for("party", "alpha", None) is None


async def test_a_share_set_at_runtime_reaches_another_router(
    settings: Settings, resources: Resources
) -> None:
    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url)
    try:
        writer = RoutingService(
            _router(redis, settings.redis_key_prefix), {}, AuditLog(resources.sessionmaker)
        )
        reader = _router(redis, settings.redis_key_prefix, refresh_s=0.1)
        tasks = [TaskIn(platform="beta", key=f"k{i}") for i in range(200)]
        assert set(await reader.lanes("parcel", tasks, None)) == {NATIVE}

        admin = Actor(principal="user:admin@example", role="admin")
        view = await writer.set_share("parcel/*", 1.0, admin)
        assert (view.share, view.set_by) == (1.0, "user:admin@example")

        async def all_celery() -> bool:
            return set(await reader.lanes("parcel", tasks, None)) == {"parcel/*"}

        await wait_until(all_celery, within_s=5, what="the new share seen by the other router")
        shown = {v.route.id: v for v in await writer.show()}
        assert shown["parcel/*"].share == 1.0
        assert shown["parcel/*"].set_by == "user:admin@example"
        # Audited: who changed which route, from what to what.
        (row,) = await audit_rows(resources.sessionmaker)
        assert (row["actor"], row["action"], row["target"]) == (
            "user:admin@example",
            "routing.set",
            "routing:parcel/*",
        )
        assert (row["before"], row["after"]) == ({"share": 0.0}, {"share": 1.0})
        assert shown["parcel/alpha"].share == 1.0
        assert shown["parcel/alpha"].set_by is None
        (latest,) = await writer.history(1)
        assert (latest.route, latest.share, latest.by) == ("parcel/*", 1.0, "user:admin@example")
    finally:
        await redis.aclose()


async def test_bad_shares_and_unknown_routes_are_refused(settings: Settings) -> None:
    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url)
    try:
        # Refused before anything is written, the audit row included.
        service = RoutingService(_router(redis, settings.redis_key_prefix), {}, offline_audit())
        for bad in (-0.1, 1.5, float("nan"), float("inf"), True):
            with pytest.raises(InvalidInput):
                await service.set_share("parcel/alpha", bad, TEST_ACTOR)
        with pytest.raises(InvalidInput) as unknown:
            await service.set_shares({"parcel/alpha": 0.5, "parcel/nowhere": 0.5}, TEST_ACTOR)
        (error,) = unknown.value.extra["errors"]
        assert error["loc"] == ["body", "shares", "parcel/nowhere"]
        assert await service.history() == []
    finally:
        await redis.aclose()
