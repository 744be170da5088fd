"""The proxy pool against real Redis and PostgreSQL, with a controllable clock."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import CapturingLogger

from gateway.core.audience import Audience
from gateway.core.errors import Forbidden, NotFound, ServiceUnavailable
from gateway.core.resources import Resources
from gateway.proxy_pool import service
from gateway.proxy_pool.inventory import add_proxies, remove_proxies
from gateway.proxy_pool.metrics import proxy_metrics
from gateway.proxy_pool.service import ProxyHolder, ProxyPool


@dataclass
class Clock:
    """Wall clock the test moves by hand."""

    now: float = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pool(resources: Resources, clock: Clock) -> ProxyPool:
    settings = resources.settings.model_copy(
        update={"proxy_ban_base_s": 60, "proxy_ban_cap_s": 200, "proxy_lease_ttl_s": 30}
    )
    return ProxyPool(
        redis=resources.redis,
        sessionmaker=resources.sessionmaker,
        settings=settings,
        key_base=resources.key("proxy", ""),
        metrics=proxy_metrics(resources.metrics.registry(Audience.PARCEL)),
        clock=clock,
    )


async def _add(resources: Resources, count: int) -> list[str]:
    urls = [f"http://user{i}:pw{i}@10.0.0.{i}:3128" for i in range(1, count + 1)]
    added = await add_proxies(resources, urls)
    return [str(a.proxy_id) for a in added]


def holder(worker_id: str = "w") -> ProxyHolder:
    """A holder under one test token id."""
    return ProxyHolder(1, worker_id)


def _retry_after(exc: pytest.ExceptionInfo[ServiceUnavailable]) -> int:
    return int(exc.value.headers["Retry-After"])


async def test_ban_cools_down_only_on_that_platform_with_exponential_backoff(
    resources: Resources, pool: ProxyPool, clock: Clock
) -> None:
    [proxy] = await _add(resources, 1)

    first = await pool.lease(holder("w1"), "county-a")
    released = await pool.release(holder("w1"), first.proxy_lease_id, "banned", 403)
    assert (released.status, released.cooldown_s) == ("released", 60)

    with pytest.raises(ServiceUnavailable) as exhausted:
        await pool.lease(holder("w1"), "county-a")
    assert exhausted.value.extra["reason"] == "no_proxy_available"
    assert 1 <= _retry_after(exhausted) <= 5
    other = await pool.lease(holder("w2"), "county-b")
    assert other.proxy_id == proxy  # the ban is per platform

    clock.advance(61)
    again = await pool.lease(holder("w1"), "county-a")
    assert again.proxy_id == proxy
    second_ban = await pool.release(holder("w1"), again.proxy_lease_id, "banned")
    assert second_ban.cooldown_s == 120  # doubled
    clock.advance(121)
    third = await pool.lease(holder("w1"), "county-a")
    assert (
        await pool.release(holder("w1"), third.proxy_lease_id, "banned")
    ).cooldown_s == 200  # capped

    clock.advance(201)
    healed = await pool.lease(holder("w1"), "county-a")
    await pool.release(holder("w1"), healed.proxy_lease_id, "ok")  # resets the ban streak
    fresh = await pool.lease(holder("w1"), "county-a")
    assert (await pool.release(holder("w1"), fresh.proxy_lease_id, "banned")).cooldown_s == 60


async def test_least_recently_used_first(
    resources: Resources, pool: ProxyPool, clock: Clock
) -> None:
    ids = await _add(resources, 3)
    order = []
    for _ in range(6):
        lease = await pool.lease(holder("w"), "county-a")
        order.append(lease.proxy_id)
        clock.advance(1)
        await pool.release(holder("w"), lease.proxy_lease_id, "ok")
    assert sorted(order[:3]) == sorted(ids)
    assert order[3:] == order[:3]  # the round robin of least recently used


async def test_errors_rank_a_proxy_below_healthy_ones_until_it_recovers(
    resources: Resources, pool: ProxyPool, clock: Clock
) -> None:
    await _add(resources, 2)
    bad = await pool.lease(holder("w"), "county-a")
    clock.advance(1)
    await pool.release(holder("w"), bad.proxy_lease_id, "error", 502)
    # The erroring proxy was used least recently of the two after this round, yet the
    # healthy one keeps being chosen.
    for _ in range(3):
        lease = await pool.lease(holder("w"), "county-a")
        assert lease.proxy_id != bad.proxy_id
        clock.advance(1)
        await pool.release(holder("w"), lease.proxy_lease_id, "ok")
    # The error count is per platform: elsewhere the same proxy ranks normally.
    elsewhere = await pool.lease(holder("w"), "county-b")
    other = await pool.lease(holder("w"), "county-b")
    assert {elsewhere.proxy_id, other.proxy_id} == {bad.proxy_id, lease.proxy_id}

    # When it is the only one free it is still handed out; a success restores it.
    busy = await pool.lease(holder("w"), "county-a")
    assert busy.proxy_id != bad.proxy_id
    recovering = await pool.lease(holder("w"), "county-a")
    assert recovering.proxy_id == bad.proxy_id
    clock.advance(1)
    await pool.release(holder("w"), recovering.proxy_lease_id, "ok")
    clock.advance(1)
    await pool.release(holder("w"), busy.proxy_lease_id, "ok")
    assert (await pool.lease(holder("w"), "county-a")).proxy_id == bad.proxy_id  # LRU again


async def test_expired_lease_returns_the_proxy_and_a_late_ban_still_counts(
    resources: Resources, pool: ProxyPool, clock: Clock
) -> None:
    [proxy] = await _add(resources, 1)
    crashed = await pool.lease(holder("w1"), "county-a")
    with pytest.raises(ServiceUnavailable):
        await pool.lease(holder("w2"), "county-a")

    clock.advance(31)  # past the 30 s lease TTL
    taken_over = await pool.lease(holder("w2"), "county-a")
    assert taken_over.proxy_id == proxy

    late = await pool.release(holder("w1"), crashed.proxy_lease_id, "banned", 429)
    assert late.status == "expired"
    assert late.cooldown_s == 60
    # The current holder keeps it; once released it cools instead of returning.
    assert (await pool.release(holder("w2"), taken_over.proxy_lease_id, "ok")).status == "released"
    with pytest.raises(ServiceUnavailable):
        await pool.lease(holder("w3"), "county-a")


async def test_tick_reclaims_expired_leases_and_reports_gauges(
    resources: Resources, pool: ProxyPool, clock: Clock
) -> None:
    await _add(resources, 3)
    await pool.lease(holder("w"), "county-a")
    banned = await pool.lease(holder("w"), "county-a")
    await pool.release(holder("w"), banned.proxy_lease_id, "banned")
    [state] = await pool.tick()
    assert (state.available, state.leased, state.cooling) == (1, 1, 1)

    clock.advance(31)
    [state] = await pool.tick()
    assert (state.available, state.leased, state.cooling) == (2, 0, 1)
    registry: CollectorRegistry = resources.metrics.registry(Audience.PARCEL)
    value = registry.get_sample_value(
        "gateway_proxies", {"platform": "county-a", "state": "available"}
    )
    assert value == 2


async def test_rotate_swaps_to_another_proxy_atomically(
    resources: Resources, pool: ProxyPool
) -> None:
    await _add(resources, 2)
    first = await pool.lease(holder("w1"), "county-a")
    released, second = await pool.rotate(holder("w1"), first.proxy_lease_id, "banned", 403)
    assert released.status == "released"
    assert second.proxy_id != first.proxy_id
    assert second.platform == "county-a"

    # Only the banned proxy is left: rotating reports 503 but the release happened.
    with pytest.raises(ServiceUnavailable) as exhausted:
        await pool.rotate(holder("w1"), second.proxy_lease_id, "ok")
    assert exhausted.value.extra["released"] == "released"
    assert "Retry-After" in exhausted.value.headers
    with pytest.raises(NotFound):
        await pool.rotate(holder("w"), "pl_unknown", "ok")


async def test_rotate_with_ok_never_returns_the_same_proxy(
    resources: Resources, pool: ProxyPool
) -> None:
    [proxy] = await _add(resources, 1)
    lease = await pool.lease(holder("w"), "county-a")
    with pytest.raises(ServiceUnavailable):
        await pool.rotate(holder("w"), lease.proxy_lease_id, "ok")
    assert (await pool.lease(holder("w"), "county-a")).proxy_id == proxy  # it was released


async def test_release_is_idempotent_and_unknown_leases_are_404(
    resources: Resources, pool: ProxyPool
) -> None:
    await _add(resources, 1)
    lease = await pool.lease(holder("w"), "county-a")
    assert (await pool.release(holder("w"), lease.proxy_lease_id, "ok")).status == "released"
    assert (
        await pool.release(holder("w"), lease.proxy_lease_id, "banned")
    ).status == "already_released"
    assert (await pool.lease(holder("w"), "county-a")).proxy_id == lease.proxy_id  # no ban applied
    with pytest.raises(NotFound):
        await pool.release(holder("w"), "pl_never_issued", "ok")


async def test_empty_inventory_asks_to_retry_later(pool: ProxyPool) -> None:
    with pytest.raises(ServiceUnavailable) as exhausted:
        await pool.lease(holder("w"), "county-a")
    assert _retry_after(exhausted) == 30


async def test_concurrent_leases_never_share_a_proxy(resources: Resources, pool: ProxyPool) -> None:
    await _add(resources, 5)

    async def attempt(i: int) -> str | None:
        try:
            return (await pool.lease(holder(f"w{i}"), "county-a")).proxy_id
        except ServiceUnavailable:
            return None

    got = await asyncio.gather(*(attempt(i) for i in range(20)))
    leased = [g for g in got if g is not None]
    assert len(leased) == 5
    assert len(set(leased)) == 5


async def test_removed_proxy_leaves_the_pool_after_its_lease(
    resources: Resources, pool: ProxyPool
) -> None:
    keep, drop = await _add(resources, 2)
    held = await pool.lease(holder("w"), "county-a")
    assert held.proxy_id == keep or held.proxy_id == drop
    victim = held.proxy_id
    await remove_proxies(resources, [int(victim)])
    await pool.release(holder("w"), held.proxy_lease_id, "ok")
    survivor = await pool.lease(holder("w"), "county-a")
    assert survivor.proxy_id != victim
    with pytest.raises(ServiceUnavailable):
        await pool.lease(holder("w"), "county-a")


async def test_pool_is_rebuilt_from_postgres_when_redis_loses_it(
    resources: Resources, pool: ProxyPool
) -> None:
    ids = await _add(resources, 2)
    await pool.lease(holder("w"), "county-a")
    keys = [k async for k in resources.redis.scan_iter(match=resources.key("proxy", "*"))]
    await resources.redis.delete(*keys)
    first = await pool.lease(holder("w"), "county-a")
    second = await pool.lease(holder("w"), "county-a")
    assert sorted([first.proxy_id, second.proxy_id]) == sorted(ids)


async def test_only_the_holder_may_release_or_rotate_a_proxy_lease(
    resources: Resources, pool: ProxyPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = CapturingLogger()
    monkeypatch.setattr(service, "log", logger)
    await _add(resources, 2)
    lease = await pool.lease(holder("w1"), "county-a")
    # Another token with the same worker id, and another worker id under the same token.
    for intruder in (ProxyHolder(2, "w1"), holder("w2")):
        with pytest.raises(Forbidden) as refused:
            await pool.release(intruder, lease.proxy_lease_id, "banned", 403)
        assert refused.value.extra["reason"] == "not_lease_holder"
        with pytest.raises(Forbidden):
            await pool.rotate(intruder, lease.proxy_lease_id, "banned")
    # Nothing changed: no cool-down, the proxy is still the holder's, the other one free.
    states = {(s.proxy_id, s.state, s.bans) for s in await pool.status()}
    assert (lease.proxy_id, "leased", 0) in states
    assert [c.kwargs["operation"] for c in logger.calls if c.args == ("not_lease_holder",)] == [
        "release",
        "rotate",
        "release",
        "rotate",
    ]
    registry = resources.metrics.registry(Audience.PARCEL)
    for operation in ("release", "rotate"):
        refusals = registry.get_sample_value(
            "gateway_proxy_holder_refusals_total", {"operation": operation}
        )
        assert refusals == 2
    # The holder, on the other hand, rotates and releases as before.
    released, rotated = await pool.rotate(holder("w1"), lease.proxy_lease_id, "ok")
    assert released.status == "released"
    assert (await pool.release(holder("w1"), rotated.proxy_lease_id, "ok")).status == "released"


async def test_a_proxy_lease_from_before_binding_is_released_by_anyone(
    resources: Resources, pool: ProxyPool
) -> None:
    # A lease record written by a replica of the previous version has no token: the
    # release that used to work keeps working until the record ends.
    await _add(resources, 1)
    lease = await pool.lease(holder("w1"), "county-a")
    await resources.redis.hdel(resources.key("proxy", "lease:") + lease.proxy_lease_id, "token")
    released = await pool.release(ProxyHolder(2, "w2"), lease.proxy_lease_id, "ok")
    assert released.status == "released"
