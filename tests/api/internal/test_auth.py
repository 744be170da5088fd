"""`X-Worker-Token` on the worker ports: missing, unknown, revoked, wrong port, roles."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from gateway.core.audience import Audience
from gateway.core.resources import Resources
from gateway.work.plane import token_store
from gateway.work.tokens import Role
from tests.conftest import ClientFactory
from tests.support.audit import TEST_ACTOR
from tests.support.wait import wait_until
from tests.support.work import make_token

pytestmark = pytest.mark.integration

WORK = "/internal/work?worker_id=w1&platforms=alpha"


async def _reason(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    reason: str = response.json()["reason"]
    return reason


async def test_missing_and_unknown_tokens_are_401(parcel_client: httpx.AsyncClient) -> None:
    assert await _reason(await parcel_client.get(WORK)) == "missing_token"
    unknown = await parcel_client.get(WORK, headers={"X-Worker-Token": "gwt_parcel_nope"})
    assert await _reason(unknown) == "invalid_token"
    # The submitted secret is never echoed back.
    assert "gwt_parcel_nope" not in unknown.text


async def test_token_of_the_other_port_is_401(
    resources: Resources, client_for: ClientFactory
) -> None:
    parcel_token = await make_token(resources, "parcel", "producer")
    party_token = await make_token(resources, "party", "producer")
    async with client_for(Audience.PARCEL) as parcel, client_for(Audience.PARTY) as party:
        assert (await parcel.get(WORK, headers={"X-Worker-Token": parcel_token})).status_code == 200
        assert (await party.get(WORK, headers={"X-Worker-Token": party_token})).status_code == 200
        wrong = await party.get(WORK, headers={"X-Worker-Token": parcel_token})
        assert await _reason(wrong) == "wrong_audience"
        wrong = await parcel.post(
            "/internal/tasks",
            json={"tasks": [{"platform": "alpha", "key": "k"}]},
            headers={"X-Worker-Token": party_token},
        )
        assert await _reason(wrong) == "wrong_audience"


async def test_revoked_token_is_401_at_once_despite_the_cache(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    store = token_store(resources)
    token = await store.create(
        audience="parcel", name="soon-gone", role=Role.WORKER, actor=TEST_ACTOR
    )
    headers = {"X-Worker-Token": token}
    assert (await parcel_client.get(WORK, headers=headers)).status_code == 200  # now cached
    await store.revoke("soon-gone", actor=TEST_ACTOR)
    assert await _reason(await parcel_client.get(WORK, headers=headers)) == "revoked_token"


async def test_worker_token_may_not_enqueue(
    resources: Resources, parcel_client: httpx.AsyncClient
) -> None:
    worker = await make_token(resources, "parcel", "worker")
    producer = await make_token(resources, "parcel", "producer")
    body = {"tasks": [{"platform": "alpha", "key": "k1"}]}
    denied = await parcel_client.post(
        "/internal/tasks", json=body, headers={"X-Worker-Token": worker}
    )
    assert denied.status_code == 403
    assert denied.headers["content-type"] == "application/problem+json"
    allowed = await parcel_client.post(
        "/internal/tasks", json=body, headers={"X-Worker-Token": producer}
    )
    assert allowed.status_code == 200
    assert allowed.json()["enqueued"] == 1


async def test_last_use_is_recorded(resources: Resources, parcel_client: httpx.AsyncClient) -> None:
    token = await make_token(resources, "parcel", "worker")
    rows = await token_store(resources).list()
    assert all(r.last_used_at is None for r in rows)
    assert (await parcel_client.get(WORK, headers={"X-Worker-Token": token})).status_code == 200
    query = sa.text("SELECT count(*) FROM worker_tokens WHERE last_used_at IS NOT NULL")

    async def recorded() -> bool:  # written in the background, off the request path
        async with resources.sessionmaker() as session:
            return bool((await session.execute(query)).scalar_one())

    await wait_until(recorded, what="last_used_at being written")
    async with resources.sessionmaker() as session:
        assert (await session.execute(query)).scalar_one() == 1


async def test_only_hashes_are_stored(resources: Resources) -> None:
    token = await make_token(resources, "party", "worker")
    async with resources.sessionmaker() as session:
        stored = (
            (await session.execute(sa.text("SELECT token_hash FROM worker_tokens"))).scalars().all()
        )
    assert len(stored) == 1
    assert token not in stored[0]
    assert len(stored[0]) == 64
