"""Managing the proxy inventory (PostgreSQL), each change pushed to the Redis pool."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.core.resources import Resources
from gateway.proxy_pool.repository.proxies import add_proxy, list_proxies, remove_proxy
from gateway.proxy_pool.service import ProxyPlatformStatus, ProxyPool
from gateway.proxy_pool.urls import mask_proxy_url, normalize_proxy_url


@dataclass(frozen=True)
class AddedProxy:
    """One `add` result; only the masked URL is kept."""

    proxy_id: int
    masked_url: str
    created: bool


@dataclass(frozen=True)
class ProxyView:
    """A proxy as operators see it: masked URL and per-platform state."""

    proxy_id: int
    masked_url: str
    created_at: datetime
    platforms: list[ProxyPlatformStatus] = field(default_factory=list)


async def add_proxies(resources: Resources, urls: Iterable[str]) -> list[AddedProxy]:
    """Validate every URL first, insert them in one transaction, then sync Redis."""
    checked = [normalize_proxy_url(url) for url in urls]
    added = []
    async with resources.sessionmaker() as session, session.begin():
        for url in checked:
            proxy_id, created = await add_proxy(session, url)
            added.append(AddedProxy(proxy_id, mask_proxy_url(url), created))
    await ProxyPool.for_resources(resources).sync()
    return added


async def remove_proxies(resources: Resources, proxy_ids: Iterable[int]) -> dict[int, bool]:
    """Delete proxies by id and sync Redis; maps each id to whether it existed.

    A proxy leased right now stays with its worker until released or expired, then
    leaves the pool instead of returning to it.
    """
    removed = {}
    async with resources.sessionmaker() as session, session.begin():
        for proxy_id in proxy_ids:
            removed[proxy_id] = await remove_proxy(session, proxy_id)
    await ProxyPool.for_resources(resources).sync()
    return removed


async def describe_proxies(resources: Resources) -> list[ProxyView]:
    """Every proxy with its state on each platform seen so far."""
    async with resources.sessionmaker() as session:
        rows = await list_proxies(session)
    statuses = await ProxyPool.for_resources(resources).status()
    by_proxy: dict[str, list[ProxyPlatformStatus]] = {}
    for status in statuses:
        by_proxy.setdefault(status.proxy_id, []).append(status)
    return [
        ProxyView(row.id, mask_proxy_url(row.url), row.created_at, by_proxy.get(str(row.id), []))
        for row in rows
    ]
