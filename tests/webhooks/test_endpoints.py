"""Webhook endpoints over the public API: register, read, change, rotate, delete; the
deliveries log, redelivery and test events; isolation between principals; URL checks.

Deliveries are inserted through the repository, as the dispatcher will insert them.
URLs use public IP literals (no DNS needed) unless a test is about resolution.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.core.logs import configure_logging
from gateway.core.settings import Environment, LogFormat, Settings
from gateway.core.settings.tiers import DEFAULT_TIERS
from gateway.webhooks.plane import WebhooksPlane
from gateway.webhooks.repository import deliveries as delivery_repo
from tests.support.jobs import JobsHarness, jobs_harness

pytestmark = pytest.mark.integration

URL = "https://1.1.1.1/hooks/gw?token=receiver-side-token"
# The app's delivery loop would send these tests' deliveries to URL; one step per 10
# minutes and no wake on insert keep them pending, as these tests expect.
IDLE_DELIVERY = {"webhook_dispatch_interval_s": 600.0, "webhook_listen": False}


@pytest.fixture
async def h(settings: Settings) -> AsyncIterator[JobsHarness]:
    """One gateway's apps; webhook URLs on private networks refused (the default)."""
    async with jobs_harness(settings, **IDLE_DELIVERY) as harness:
        yield harness


def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def plane_of(h: JobsHarness) -> WebhooksPlane:
    plane: WebhooksPlane = h.public_app.state.planes["webhooks"]
    return plane


async def create(h: JobsHarness, key: str, **body: Any) -> dict[str, Any]:
    """POST /v1/webhooks (asserting 201); the answer."""
    payload = {"url": URL, "events": ["job.completed"], **body}
    response = await h.public.post("/v1/webhooks", json=payload, headers=auth(key))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def insert_delivery(
    h: JobsHarness,
    endpoint_id: str,
    delivery_id: str,
    *,
    state: str = "failed",
    created_at: datetime,
    attempts: int = 0,
) -> None:
    """A delivery (and `attempts` failed attempts) as the dispatcher would record it."""
    async with h.resources.sessionmaker() as session, session.begin():
        await delivery_repo.insert_delivery(
            session,
            {
                "id": delivery_id,
                "endpoint_id": endpoint_id,
                "event_type": "job.completed",
                "event_id": f"job_{delivery_id[-24:]}:7",
                "payload": {"type": "job.completed", "data": {"n": delivery_id}},
                "state": state,
                "attempts": attempts,
                "created_at": created_at,
                "updated_at": created_at,
            },
        )
        for n in range(1, attempts + 1):
            await delivery_repo.insert_attempt(
                session,
                {
                    "delivery_id": delivery_id,
                    "attempt": n,
                    "at": created_at + timedelta(seconds=n),
                    "status": 500,
                    "error": None,
                    "latency_ms": 12.5,
                    "excerpt": f"oops {n}",
                    "next_retry_at": created_at + timedelta(minutes=n),
                },
            )


def msg_id(n: int) -> str:
    return f"msg_{n:024x}"


# -- create, read, list ---------------------------------------------------------------


async def test_create_answers_201_with_location_and_a_secret_shown_only_then(
    h: JobsHarness,
) -> None:
    key = await h.key()
    created = await create(
        h, key, events=["job.failed", "job.completed", "job.failed"], description="ops"
    )
    assert created["id"].startswith("wh_")
    assert created["secret"].startswith("whsec_")
    assert created["url"] == URL
    assert created["events"] == ["job.failed", "job.completed"]  # order kept, repeats dropped
    assert created["enabled"] is True
    assert created["description"] == "ops"
    got = await h.public.get(f"/v1/webhooks/{created['id']}", headers=auth(key))
    assert got.status_code == 200
    assert got.headers["Cache-Control"] == "no-store"
    assert "secret" not in got.json()
    assert created["secret"] not in got.text
    assert got.json() == {k: v for k, v in created.items() if k != "secret"}
    listed = await h.public.get("/v1/webhooks", headers=auth(key))
    assert created["secret"] not in listed.text
    assert [e["id"] for e in listed.json()["items"]] == [created["id"]]


async def test_location_names_the_created_endpoint(h: JobsHarness) -> None:
    key = await h.key()
    response = await h.public.post(
        "/v1/webhooks", json={"url": URL, "events": ["job.completed"]}, headers=auth(key)
    )
    assert response.status_code == 201
    location = response.headers["Location"]
    assert location == f"/v1/webhooks/{response.json()['id']}"
    assert (await h.public.get(location, headers=auth(key))).status_code == 200


async def test_list_is_newest_first_and_pages_with_a_cursor(h: JobsHarness) -> None:
    key = await h.key()
    ids = [(await create(h, key, description=f"n{i}"))["id"] for i in range(4)]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await h.public.get("/v1/webhooks", params=params, headers=auth(key))).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]
    bad = await h.public.get("/v1/webhooks", params={"cursor": "nope"}, headers=auth(key))
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["query", "cursor"]


async def test_anonymous_callers_own_no_webhooks(settings: Settings) -> None:
    async with jobs_harness(settings, **IDLE_DELIVERY, anonymous_tier="free") as anon:
        response = await anon.public.post(
            "/v1/webhooks", json={"url": URL, "events": ["job.completed"]}
        )
        listed = await anon.public.get("/v1/webhooks")
    assert response.status_code == 403
    assert "account" in response.json()["detail"]
    assert listed.status_code == 403


# -- validation and the URL guard -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://1.1.1.1/x", "events": ["job.completed"]}, "url"),
        ({"url": "https:///no-host", "events": ["job.completed"]}, "url"),
        ({"url": "https://user:pw@1.1.1.1/x", "events": ["job.completed"]}, "url"),
        ({"url": "not a url", "events": ["job.completed"]}, "url"),
        ({"url": "https://1.1.1.1:99999/x", "events": ["job.completed"]}, "url"),
        ({"url": "https://1.1.1.1/" + "a" * 2048, "events": ["job.completed"]}, "url"),
        ({"url": "https://1.1.1.1/\u0000", "events": ["job.completed"]}, "url"),
        ({"url": URL, "events": []}, "events"),
        ({"url": URL, "events": ["job.exploded"]}, "events"),
        ({"url": URL}, "events"),
        ({"url": URL, "events": ["job.completed"], "description": "x" * 501}, "description"),
        ({"url": URL, "events": ["job.completed"], "secret": "whsec_mine"}, "secret"),
        ({"url": "https://1.1.1.1/\ud800", "events": ["job.completed"]}, "url"),
        ({"url": URL, "events": ["job.completed"], "description": "a\ud800"}, "description"),
        ({"url": URL, "events": ["job.completed"] * 65}, "events"),
    ],
)
async def test_bad_bodies_are_422_naming_the_field_and_create_nothing(
    h: JobsHarness, body: dict[str, Any], field: str
) -> None:
    key = await h.key()
    # json.dumps escapes lone surrogates as JSON can (`\\ud800`); httpx's encoder cannot.
    response = await h.public.post(
        "/v1/webhooks",
        content=json.dumps(body),
        headers={**auth(key), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert any(field in e["loc"] for e in response.json()["errors"]), response.json()
    assert await h.count("SELECT count(*) FROM webhook_endpoints") == 0


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost:8080/hook", "loopback"),  # resolves to a loopback address
        ("http://[::1]/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://172.16.0.9/hook", "private"),
        ("http://192.168.1.1/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://0.0.0.0/hook", "unspecified"),
    ],
)
async def test_urls_on_private_networks_are_refused(h: JobsHarness, url: str, why: str) -> None:
    key = await h.key()
    response = await h.public.post(
        "/v1/webhooks", json={"url": url, "events": ["job.completed"]}, headers=auth(key)
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["loc"] == ["body", "url"]
    assert why in error["msg"]
    assert await h.count("SELECT count(*) FROM webhook_endpoints") == 0


async def test_a_changed_url_is_checked_like_a_new_one(h: JobsHarness) -> None:
    key = await h.key()
    created = await create(h, key)
    response = await h.public.patch(
        f"/v1/webhooks/{created['id']}", json={"url": "http://127.0.0.1/x"}, headers=auth(key)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "url"]
    assert (await h.public.get(f"/v1/webhooks/{created['id']}", headers=auth(key))).json()[
        "url"
    ] == URL


async def test_private_urls_are_accepted_when_settings_allow_them(settings: Settings) -> None:
    async with jobs_harness(settings, **IDLE_DELIVERY, webhook_allow_private_networks=True) as h:
        key = await h.key()
        response = await h.public.post(
            "/v1/webhooks",
            json={"url": "http://127.0.0.1:8080/hook", "events": ["job.completed"]},
            headers=auth(key),
        )
    assert response.status_code == 201, response.text
    assert response.json()["url"] == "http://127.0.0.1:8080/hook"


async def test_production_requires_https(settings: Settings) -> None:
    # Production settings insist on more than this test needs (hosts, secrets): the
    # check reads the environment only, so a copy with just that changed shows it.
    async with jobs_harness(
        settings, **IDLE_DELIVERY, environment=Environment.PRODUCTION, redis_allow_volatile=True
    ) as h:
        key = await h.key()
        plain = await h.public.post(
            "/v1/webhooks",
            json={"url": "http://1.1.1.1/x", "events": ["job.completed"]},
            headers=auth(key),
        )
        tls = await h.public.post(
            "/v1/webhooks",
            json={"url": "https://1.1.1.1/x", "events": ["job.completed"]},
            headers=auth(key),
        )
    assert plain.status_code == 422
    assert "https" in plain.json()["errors"][0]["msg"]
    assert tls.status_code == 201, tls.text


# -- change and delete ----------------------------------------------------------------


async def test_patch_changes_only_the_given_fields(h: JobsHarness) -> None:
    key = await h.key()
    created = await create(h, key, description="first")
    path = f"/v1/webhooks/{created['id']}"
    changed = await h.public.patch(
        path, json={"events": ["job.progress", "parcel.changed"]}, headers=auth(key)
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["events"] == ["job.progress", "parcel.changed"]
    assert body["description"] == "first"
    assert body["url"] == URL
    cleared = await h.public.patch(path, json={"description": None}, headers=auth(key))
    assert cleared.json()["description"] is None
    moved = await h.public.patch(path, json={"url": "https://8.8.8.8/new"}, headers=auth(key))
    assert moved.json()["url"] == "https://8.8.8.8/new"
    assert (await h.public.get(path, headers=auth(key))).json()["url"] == "https://8.8.8.8/new"
    bad_patches: list[dict[str, Any]] = [
        {"url": None},
        {"events": None},
        {"enabled": None},
        {"events": []},
        {"x": 1},
    ]
    for bad in bad_patches:
        response = await h.public.patch(path, json=bad, headers=auth(key))
        assert response.status_code == 422, (bad, response.text)


async def test_disable_and_enable_again_clears_the_disabled_state(h: JobsHarness) -> None:
    key = await h.key()
    created = await create(h, key)
    path = f"/v1/webhooks/{created['id']}"
    off = (await h.public.patch(path, json={"enabled": False}, headers=auth(key))).json()
    assert off["enabled"] is False
    assert off["disabled_reason"] == "owner"
    assert off["disabled_at"] is not None
    # As the dispatcher will record a failing endpoint (410, or failing for days).
    async with h.resources.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "UPDATE webhook_endpoints SET disabled_reason = 'gone', failing_since = now()"
                " WHERE id = :id"
            ),
            {"id": created["id"]},
        )
    assert (await h.public.get(path, headers=auth(key))).json()["disabled_reason"] == "gone"
    on = (await h.public.patch(path, json={"enabled": True}, headers=auth(key))).json()
    assert on["enabled"] is True
    assert on["disabled_reason"] is None
    assert on["disabled_at"] is None
    assert on["failing_since"] is None


async def test_delete_removes_the_endpoint_and_its_deliveries(h: JobsHarness) -> None:
    key = await h.key()
    created = await create(h, key)
    await insert_delivery(h, created["id"], msg_id(1), created_at=datetime.now(UTC), attempts=2)
    path = f"/v1/webhooks/{created['id']}"
    response = await h.public.delete(path, headers=auth(key))
    assert response.status_code == 204
    assert (await h.public.get(path, headers=auth(key))).status_code == 404
    assert (await h.public.delete(path, headers=auth(key))).status_code == 404
    assert await h.count("SELECT count(*) FROM webhook_deliveries") == 0
    assert await h.count("SELECT count(*) FROM webhook_attempts") == 0


async def test_unknown_ids_are_404_and_malformed_ones_422(h: JobsHarness) -> None:
    key = await h.key()
    missing = await h.public.get(f"/v1/webhooks/wh_{'0' * 24}", headers=auth(key))
    assert missing.status_code == 404
    assert missing.headers["Content-Type"].startswith("application/problem+json")
    malformed = await h.public.get("/v1/webhooks/job_123", headers=auth(key))
    assert malformed.status_code == 422


# -- isolation ------------------------------------------------------------------------


async def test_another_principals_endpoint_is_404_everywhere(h: JobsHarness) -> None:
    alice = await h.key(user="alice")
    bob = await h.key(user="bob")
    created = await create(h, alice)
    wid = created["id"]
    await insert_delivery(h, wid, msg_id(1), created_at=datetime.now(UTC))
    for method, path, body in [
        ("GET", f"/v1/webhooks/{wid}", None),
        ("PATCH", f"/v1/webhooks/{wid}", {"enabled": False}),
        ("DELETE", f"/v1/webhooks/{wid}", None),
        ("POST", f"/v1/webhooks/{wid}/rotate-secret", None),
        ("POST", f"/v1/webhooks/{wid}/test", None),
        ("GET", f"/v1/webhooks/{wid}/deliveries", None),
        ("GET", f"/v1/webhooks/{wid}/deliveries/{msg_id(1)}", None),
        ("POST", f"/v1/webhooks/{wid}/deliveries/{msg_id(1)}/redeliver", None),
    ]:
        response = await h.public.request(method, path, json=body, headers=auth(bob))
        assert response.status_code == 404, (method, path, response.text)
    assert (await h.public.get("/v1/webhooks", headers=auth(bob))).json()["items"] == []
    # Nothing changed for its owner.
    mine = (await h.public.get(f"/v1/webhooks/{wid}", headers=auth(alice))).json()
    assert mine["enabled"] is True
    assert mine["previous_secret_expires_at"] is None
    assert await h.count("SELECT count(*) FROM webhook_deliveries") == 1
    assert await h.count("SELECT count(*) FROM webhook_deliveries WHERE state = 'failed'") == 1


# -- the tier cap ---------------------------------------------------------------------


async def test_the_tier_cap_is_a_429_and_a_deleted_endpoint_frees_a_place(
    h: JobsHarness,
) -> None:
    key = await h.key(tier="pro")
    cap = h.public_plane.tiers.get("pro").max_webhooks
    ids = [(await create(h, key))["id"] for _ in range(cap)]
    refused = await h.public.post(
        "/v1/webhooks", json={"url": URL, "events": ["job.completed"]}, headers=auth(key)
    )
    assert refused.status_code == 429
    problem = refused.json()
    assert problem["type"].endswith("/too-many-webhooks")
    assert problem["max_webhooks"] == cap
    # Another principal has its own places.
    await create(h, await h.key(user="bob"))
    await h.public.delete(f"/v1/webhooks/{ids[0]}", headers=auth(key))
    await create(h, key)


async def test_concurrent_creations_never_exceed_the_cap(h: JobsHarness) -> None:
    key = await h.key(tier="pro")
    cap = h.public_plane.tiers.get("pro").max_webhooks
    responses = await asyncio.gather(
        *[
            h.public.post(
                "/v1/webhooks", json={"url": URL, "events": ["job.completed"]}, headers=auth(key)
            )
            for _ in range(cap + 3)
        ]
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * cap + [429] * 3
    assert await h.count("SELECT count(*) FROM webhook_endpoints") == cap


async def test_a_tier_without_webhooks_is_refused_with_403(
    settings: Settings, tmp_path: Path
) -> None:
    tiers = {
        name: {k: v for k, v in tier.model_dump().items() if k != "name"}
        for name, tier in DEFAULT_TIERS.items()
    }
    tiers["free"]["max_webhooks"] = 0
    path = tmp_path / "tiers.json"
    path.write_text(json.dumps({"tiers": tiers}))
    async with jobs_harness(settings, **IDLE_DELIVERY, tiers_file=path) as h:
        response = await h.public.post(
            "/v1/webhooks",
            json={"url": URL, "events": ["job.completed"]},
            headers=auth(await h.key(tier="free")),
        )
        assert response.status_code == 403
        assert "free" in response.json()["detail"]
        await create(h, await h.key(tier="pro"))


# -- secrets --------------------------------------------------------------------------


async def test_rotation_keeps_the_old_secret_signing_for_the_overlap(h: JobsHarness) -> None:
    key = await h.key()
    created = await create(h, key)
    wid, first = created["id"], created["secret"]
    plane = plane_of(h)
    assert await plane.service.signing_secrets(wid) == [first]
    before = datetime.now(UTC)
    response = await h.public.post(f"/v1/webhooks/{wid}/rotate-secret", headers=auth(key))
    assert response.status_code == 200, response.text
    rotated = response.json()
    second = rotated["secret"]
    assert second.startswith("whsec_")
    assert second != first
    until = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    overlap = timedelta(seconds=h.resources.settings.webhook_secret_overlap_s)
    assert before + overlap <= until <= datetime.now(UTC) + overlap
    shown = (await h.public.get(f"/v1/webhooks/{wid}", headers=auth(key))).json()
    assert datetime.fromisoformat(shown["previous_secret_expires_at"]) == until
    assert first not in json.dumps(shown)
    assert second not in json.dumps(shown)
    # During the overlap both sign (new first); after it, only the new one.
    assert await plane.service.signing_secrets(wid, until - timedelta(seconds=1)) == [
        second,
        first,
    ]
    assert await plane.service.signing_secrets(wid, until) == [second]
    assert await plane.service.signing_secrets(wid, until + timedelta(days=1)) == [second]


async def test_a_second_rotation_retires_the_first_secret(h: JobsHarness) -> None:
    key = await h.key()
    created = await create(h, key)
    wid = created["id"]
    path = f"/v1/webhooks/{wid}/rotate-secret"
    second = (await h.public.post(path, headers=auth(key))).json()["secret"]
    third = (await h.public.post(path, headers=auth(key))).json()["secret"]
    assert await plane_of(h).service.signing_secrets(wid) == [third, second]


async def test_without_an_overlap_the_old_secret_stops_at_once(settings: Settings) -> None:
    async with jobs_harness(settings, **IDLE_DELIVERY, webhook_secret_overlap_s=0) as h:
        key = await h.key()
        created = await create(h, key)
        response = await h.public.post(
            f"/v1/webhooks/{created['id']}/rotate-secret", headers=auth(key)
        )
        assert response.json()["previous_secret_expires_at"] is None
        assert await plane_of(h).service.signing_secrets(created["id"]) == [
            response.json()["secret"]
        ]


async def test_secrets_and_urls_never_reach_the_logs(
    h: JobsHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("info", LogFormat.JSON)
    key = await h.key()
    created = await create(h, key)
    rotated = await h.public.post(f"/v1/webhooks/{created['id']}/rotate-secret", headers=auth(key))
    await h.public.patch(
        f"/v1/webhooks/{created['id']}", json={"url": URL + "2"}, headers=auth(key)
    )
    logged = capsys.readouterr().out
    assert created["id"] in logged  # the service did log these changes
    for secret in (created["secret"], rotated.json()["secret"], "receiver-side-token"):
        assert secret not in logged


# -- deliveries -----------------------------------------------------------------------


async def test_deliveries_are_listed_newest_first_with_attempts_and_a_cursor(
    h: JobsHarness,
) -> None:
    key = await h.key()
    wid = (await create(h, key))["id"]
    other = (await create(h, key))["id"]
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for n in range(5):
        await insert_delivery(
            h,
            wid,
            msg_id(n),
            state="succeeded" if n % 2 else "failed",
            created_at=start + timedelta(minutes=n),
            attempts=n,
        )
    await insert_delivery(h, other, msg_id(99), created_at=start)
    path = f"/v1/webhooks/{wid}/deliveries"
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await h.public.get(path, params=params, headers=auth(key))
        assert response.status_code == 200, response.text
        seen += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    assert [d["id"] for d in seen] == [msg_id(n) for n in (4, 3, 2, 1, 0)]
    newest = seen[0]
    assert newest["state"] == "failed"
    assert newest["event_type"] == "job.completed"
    assert newest["attempt_count"] == 4
    assert [a["attempt"] for a in newest["attempts"]] == [1, 2, 3, 4]
    first = newest["attempts"][0]
    assert first["status"] == 500
    assert first["excerpt"] == "oops 1"
    assert first["latency_ms"] == 12.5
    assert first["next_retry_at"] is not None
    assert seen[-1]["attempts"] == []
    one = await h.public.get(f"{path}/{msg_id(3)}", headers=auth(key))
    assert one.json() == seen[1]
    wrong_endpoint = await h.public.get(f"{path}/{msg_id(99)}", headers=auth(key))
    assert wrong_endpoint.status_code == 404


async def test_deliveries_filter_by_status(h: JobsHarness) -> None:
    key = await h.key()
    wid = (await create(h, key))["id"]
    now = datetime.now(UTC)
    for n, state in enumerate(["pending", "succeeded", "failed", "dead", "failed"]):
        await insert_delivery(h, wid, msg_id(n), state=state, created_at=now + timedelta(seconds=n))
    path = f"/v1/webhooks/{wid}/deliveries"

    async def ids(status: str) -> list[str]:
        response = await h.public.get(path, params={"status": status}, headers=auth(key))
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()["items"]]

    assert await ids("failed") == [msg_id(4), msg_id(2)]
    assert await ids("dead,pending") == [msg_id(3), msg_id(0)]
    bad = await h.public.get(path, params={"status": "lost"}, headers=auth(key))
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["query", "status"]


async def test_redeliver_makes_the_delivery_pending_and_due_with_the_same_id(
    h: JobsHarness,
) -> None:
    key = await h.key()
    wid = (await create(h, key))["id"]
    await insert_delivery(h, wid, msg_id(7), state="dead", created_at=datetime.now(UTC))
    response = await h.public.post(
        f"/v1/webhooks/{wid}/deliveries/{msg_id(7)}/redeliver", headers=auth(key)
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["id"] == msg_id(7)
    assert body["state"] == "pending"
    assert body["next_attempt_at"] is not None
    assert response.headers["Location"] == f"/v1/webhooks/{wid}/deliveries/{msg_id(7)}"
    due = await h.count(
        "SELECT count(*) FROM webhook_deliveries WHERE id = :id AND state = 'pending'"
        " AND next_attempt_at <= now()",
        id=msg_id(7),
    )
    assert due == 1
    missing = await h.public.post(
        f"/v1/webhooks/{wid}/deliveries/{msg_id(8)}/redeliver", headers=auth(key)
    )
    assert missing.status_code == 404


async def test_a_disabled_endpoint_refuses_redelivery_and_tests_with_409(h: JobsHarness) -> None:
    key = await h.key()
    wid = (await create(h, key))["id"]
    await insert_delivery(h, wid, msg_id(1), state="failed", created_at=datetime.now(UTC))
    await h.public.patch(f"/v1/webhooks/{wid}", json={"enabled": False}, headers=auth(key))
    for path in (
        f"/v1/webhooks/{wid}/deliveries/{msg_id(1)}/redeliver",
        f"/v1/webhooks/{wid}/test",
    ):
        response = await h.public.post(path, headers=auth(key))
        assert response.status_code == 409, (path, response.text)
        assert "enable" in response.json()["detail"]
    assert await h.count("SELECT count(*) FROM webhook_deliveries WHERE state = 'failed'") == 1
    assert await h.count("SELECT count(*) FROM webhook_deliveries") == 1


async def test_a_test_event_is_queued_as_a_pending_delivery(h: JobsHarness) -> None:
    key = await h.key()
    wid = (await create(h, key, events=["job.failed"]))["id"]
    response = await h.public.post(f"/v1/webhooks/{wid}/test", headers=auth(key))
    assert response.status_code == 202, response.text
    delivery = response.json()
    assert delivery["id"].startswith("msg_")
    assert delivery["event_type"] == "webhook.test"
    assert delivery["state"] == "pending"
    assert delivery["payload"]["type"] == "webhook.test"
    assert delivery["payload"]["data"] == {"endpoint_id": wid}
    datetime.fromisoformat(delivery["payload"]["timestamp"])
    location = response.headers["Location"]
    assert location == f"/v1/webhooks/{wid}/deliveries/{delivery['id']}"
    assert (await h.public.get(location, headers=auth(key))).json() == delivery
    listed = await h.public.get(
        f"/v1/webhooks/{wid}/deliveries", params={"status": "pending"}, headers=auth(key)
    )
    assert [d["id"] for d in listed.json()["items"]] == [delivery["id"]]
    # Each request is an event of its own.
    again = await h.public.post(f"/v1/webhooks/{wid}/test", headers=auth(key))
    assert again.json()["id"] != delivery["id"]
    assert await h.count("SELECT count(*) FROM webhook_deliveries WHERE state = 'pending'") == 2
