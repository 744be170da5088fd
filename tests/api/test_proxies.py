"""`/internal/proxy/*` over HTTP on both internal ports."""

from __future__ import annotations

import httpx

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.proxy_pool.inventory import add_proxies
from tests.conftest import ClientFactory
from tests.support.work import make_token


async def _headers(resources: Resources, audience: str = "parcel") -> dict[str, str]:
    return {"X-Worker-Token": await make_token(resources, audience, role="worker")}


async def test_lease_release_rotate_round_trip(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    await add_proxies(resources, ["http://alice:s3cret@127.0.0.2:3128", "socks5://127.0.0.3:1080"])
    headers = await _headers(resources)

    leased = await parcel_client.post(
        "/internal/proxy/lease", json={"worker_id": "w-1", "platform": "county-a"}, headers=headers
    )
    assert leased.status_code == 200
    body = leased.json()
    assert body["platform"] == "county-a"
    assert body["proxy_url"] in {"http://alice:s3cret@127.0.0.2:3128", "socks5://127.0.0.3:1080"}
    assert body["expires_at"].endswith("Z") or "+00:00" in body["expires_at"]

    rotated = await parcel_client.post(
        "/internal/proxy/rotate",
        json={
            "worker_id": "w-1",
            "proxy_lease_id": body["proxy_lease_id"],
            "outcome": "banned",
            "status_code": 403,
        },
        headers=headers,
    )
    assert rotated.status_code == 200
    swapped = rotated.json()
    assert swapped["proxy_id"] != body["proxy_id"]
    assert swapped["released"]["status"] == "released"
    assert swapped["released"]["cooldown_s"] > 0

    released = await parcel_client.post(
        "/internal/proxy/release",
        json={"worker_id": "w-1", "proxy_lease_id": swapped["proxy_lease_id"], "outcome": "ok"},
        headers=headers,
    )
    assert released.status_code == 200
    assert released.json()["status"] == "released"

    metrics = (await parcel_client.get("/metrics")).text
    assert (
        'gateway_proxy_leases_total{audience="parcel",outcome="leased",platform="county-a"} 2.0'
        in metrics
    )
    assert 'gateway_proxy_bans_total{audience="parcel",platform="county-a"} 1.0' in metrics
    assert (
        'gateway_proxy_releases_total{audience="parcel",outcome="banned",platform="county-a"} 1.0'
        in metrics
    )


async def test_no_proxy_is_503_problem_with_retry_after(
    resources: Resources, client_for: ClientFactory
) -> None:
    await add_proxies(resources, ["http://127.0.0.2:3128"])
    headers = await _headers(resources, "party")
    async with client_for(Audience.PARTY) as party:
        first = await party.post(
            "/internal/proxy/lease",
            json={"worker_id": "w", "platform": "recorder"},
            headers=headers,
        )
        assert first.status_code == 200
        none_left = await party.post(
            "/internal/proxy/lease",
            json={"worker_id": "w", "platform": "recorder"},
            headers=headers,
        )
    assert none_left.status_code == 503
    assert none_left.headers["content-type"] == "application/problem+json"
    assert int(none_left.headers["Retry-After"]) >= 1
    assert none_left.json()["reason"] == "no_proxy_available"


async def test_the_pool_is_shared_by_both_internal_ports(
    resources: Resources, client_for: ClientFactory
) -> None:
    await add_proxies(resources, ["http://127.0.0.2:3128"])
    request = {"worker_id": "w", "platform": "county-a"}
    headers = await _headers(resources)
    party_headers = await _headers(resources, "party")
    async with client_for(Audience.PARCEL) as parcel, client_for(Audience.PARTY) as party:
        # A parcel token is not valid on the party port, for proxies as for work.
        wrong_port = await party.post("/internal/proxy/lease", json=request, headers=headers)
        assert wrong_port.status_code == 401
        lease = await party.post("/internal/proxy/lease", json=request, headers=party_headers)
        banned = await party.post(
            "/internal/proxy/release",
            json={
                "worker_id": "w",
                "proxy_lease_id": lease.json()["proxy_lease_id"],
                "outcome": "banned",
            },
            headers=party_headers,
        )
        assert banned.status_code == 200
        # The ban learnt through one port protects workers of the other.
        again = await parcel.post("/internal/proxy/lease", json=request, headers=headers)
    assert again.status_code == 503


async def test_requests_without_a_valid_token_are_401(parcel_client: httpx.AsyncClient) -> None:
    request = {"worker_id": "w", "platform": "county-a"}
    for headers in ({}, {"X-Worker-Token": "not-a-real-token"}):
        response = await parcel_client.post("/internal/proxy/lease", json=request, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"


async def test_bad_input_is_422_and_unknown_lease_404(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    headers = await _headers(resources)
    bad_platform = await parcel_client.post(
        "/internal/proxy/lease", json={"worker_id": "w", "platform": "Has Spaces"}, headers=headers
    )
    assert bad_platform.status_code == 422
    bad_outcome = await parcel_client.post(
        "/internal/proxy/release",
        json={"worker_id": "w", "proxy_lease_id": "pl_x", "outcome": "great"},
        headers=headers,
    )
    assert bad_outcome.status_code == 422
    bad_status = await parcel_client.post(
        "/internal/proxy/release",
        json={"worker_id": "w", "proxy_lease_id": "pl_x", "outcome": "ok", "status_code": 42},
        headers=headers,
    )
    assert bad_status.status_code == 422
    unknown = await parcel_client.post(
        "/internal/proxy/release",
        json={"worker_id": "w", "proxy_lease_id": "pl_x", "outcome": "ok"},
        headers=headers,
    )
    assert unknown.status_code == 404
    no_worker = await parcel_client.post(
        "/internal/proxy/release", json={"proxy_lease_id": "pl_x", "outcome": "ok"}, headers=headers
    )
    assert no_worker.status_code == 422
    not_json = await parcel_client.post(
        "/internal/proxy/lease",
        content=b"{nope",
        headers={**headers, "content-type": "application/json"},
    )
    assert not_json.status_code == 422


async def test_another_holder_cannot_release_or_rotate_a_proxy_lease(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    await add_proxies(resources, ["http://127.0.0.2:3128", "http://127.0.0.3:3128"])
    owner, intruder = await _headers(resources), await _headers(resources)
    leased = await parcel_client.post(
        "/internal/proxy/lease", json={"worker_id": "w-1", "platform": "county-a"}, headers=owner
    )
    lease_id = leased.json()["proxy_lease_id"]
    for path in ("/internal/proxy/release", "/internal/proxy/rotate"):
        for headers, worker_id in ((intruder, "w-1"), (owner, "w-2")):
            refused = await parcel_client.post(
                path,
                json={"worker_id": worker_id, "proxy_lease_id": lease_id, "outcome": "banned"},
                headers=headers,
            )
            assert refused.status_code == 403
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["reason"] == "not_lease_holder"
    metrics = (await parcel_client.get("/metrics")).text
    for operation in ("release", "rotate"):
        assert (
            f'gateway_proxy_holder_refusals_total{{audience="parcel",operation="{operation}"}} 2.0'
            in metrics
        )
    assert "gateway_proxy_bans_total{" not in metrics  # no cool-down was applied
    mine = await parcel_client.post(
        "/internal/proxy/release",
        json={"worker_id": "w-1", "proxy_lease_id": lease_id, "outcome": "ok"},
        headers=owner,
    )
    assert mine.json()["status"] == "released"
