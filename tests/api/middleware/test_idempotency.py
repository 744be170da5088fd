"""Idempotency-Key over HTTP on the public app: replays, conflicts, races, outages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.api.middleware.idempotency import IdempotencyLayer
from gateway.core.errors import DependencyUnavailable
from gateway.core.settings import Settings
from gateway.public.api_keys import IssuedKey
from tests.support.public import PublicApp, metric_value, public_app, write_tiers
from tests.support.tcp_proxy import redis_proxy
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

PROBLEMS = "https://gateway.taxlien.dev/problems/"


async def key_count(app: PublicApp, user: str = "alice") -> int:
    """API keys stored for `user`, as the database has them."""
    async with app.resources.sessionmaker() as session:
        found = await session.execute(
            text("SELECT count(*) FROM api_keys WHERE user_uid = :u"), {"u": user}
        )
        return int(found.scalar_one())


async def idem_records(app: PublicApp) -> list[bytes]:
    """Idempotency records under this test's prefix."""
    pattern = app.resources.key("idem", "*")
    return [k async for k in app.resources.redis.scan_iter(match=pattern)]


async def create(
    app: PublicApp, headers: dict[str, str], key: str | None, body: dict[str, Any] | None = None
) -> httpx.Response:
    """POST /v1/api-keys with an optional Idempotency-Key."""
    sent = dict(headers)
    if key is not None:
        sent["Idempotency-Key"] = key
    return await app.client.post("/v1/api-keys", json=body or {"name": "ci"}, headers=sent)


async def test_repeat_replays_the_stored_answer_and_runs_the_route_once(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        before = await key_count(app)
        first = await create(app, alice, '"order-1"')
        again = await create(app, alice, '"order-1"')
        # A bare token names the same key as the Structured Field string.
        bare = await create(app, alice, "order-1")
        created = await key_count(app) - before
        text_ = await app.metrics()
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    for repeat in (again, bare):
        assert repeat.status_code == 201
        assert repeat.headers["idempotent-replayed"] == "true"
        assert repeat.content == first.content
        assert repeat.headers["content-type"] == first.headers["content-type"]
        assert repeat.headers["cache-control"] == "no-store"
        # Per-response headers are the repeat's own.
        assert repeat.headers["x-request-id"] != first.headers["x-request-id"]
        assert "ratelimit" in repeat.headers
    assert created == 1
    assert metric_value(text_, "gateway_idempotency_requests_total", outcome="new") == 1
    assert metric_value(text_, "gateway_idempotency_requests_total", outcome="replayed") == 2


async def test_same_key_with_another_body_query_or_path_is_422(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        assert (await create(app, alice, "k1", {"name": "one"})).status_code == 201
        before = await key_count(app)
        other_body = await create(app, alice, "k1", {"name": "two"})
        other_query = await app.client.post(
            "/v1/api-keys?x=1", json={"name": "one"}, headers={**alice, "Idempotency-Key": "k1"}
        )
        after = await key_count(app)
        text_ = await app.metrics()
    assert other_body.status_code == 422
    assert other_body.json()["type"] == PROBLEMS + "idempotency-key-mismatch"
    assert other_body.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert other_query.status_code == 422
    assert after == before
    assert metric_value(text_, "gateway_idempotency_requests_total", outcome="mismatch") == 2


def hold_creation(
    app: PublicApp, monkeypatch: pytest.MonkeyPatch
) -> tuple[asyncio.Event, asyncio.Event]:
    """Make key creation wait for the returned `release` event; `entered` is set on entry."""
    entered, release = asyncio.Event(), asyncio.Event()
    real: Callable[..., Awaitable[IssuedKey]] = app.plane.api_keys.create

    async def held(**kwargs: Any) -> IssuedKey:
        entered.set()
        await release.wait()
        return await real(**kwargs)

    monkeypatch.setattr(app.plane.api_keys, "create", held)
    return entered, release


async def test_repeat_while_the_first_is_in_flight_is_409(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        entered, release = hold_creation(app, monkeypatch)
        first = asyncio.create_task(create(app, alice, "slow"))
        await asyncio.wait_for(entered.wait(), 30)
        # Bounded: were the layer missing, this repeat would wait on the held route.
        during = await asyncio.wait_for(create(app, alice, "slow"), 30)
        release.set()
        done = await first
        after = await create(app, alice, "slow")
        text_ = await app.metrics()
    assert during.status_code == 409
    assert during.json()["type"] == PROBLEMS + "idempotency-key-in-use"
    assert during.headers["retry-after"] == "1"
    assert done.status_code == 201
    assert after.status_code == 201
    assert after.headers["idempotent-replayed"] == "true"
    assert after.json()["id"] == done.json()["id"]
    assert metric_value(text_, "gateway_idempotency_requests_total", outcome="in_flight") == 1


async def test_fifty_concurrent_identical_posts_create_one_key(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        before = await key_count(app)
        responses = await asyncio.gather(*(create(app, alice, "race") for _ in range(50)))
        created = await key_count(app) - before
        settled = await create(app, alice, "race")
    assert created == 1
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}
    originals = [
        r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers
    ]
    assert len(originals) == 1
    assert settled.headers["idempotent-replayed"] == "true"
    assert settled.json()["id"] == originals[0].json()["id"]


async def test_a_5xx_is_not_stored_and_the_retry_runs_again(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        real = app.plane.api_keys.create
        calls = 0

        async def failing_once(**kwargs: Any) -> IssuedKey:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise DependencyUnavailable("database")
            return await real(**kwargs)

        monkeypatch.setattr(app.plane.api_keys, "create", failing_once)
        before = await key_count(app)
        failed = await create(app, alice, "retry-me")
        retried = await create(app, alice, "retry-me")
        created = await key_count(app) - before
        text_ = await app.metrics()
    assert failed.status_code == 503
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert calls == 2
    assert created == 1
    assert metric_value(text_, "gateway_idempotency_requests_total", outcome="not_stored") == 1


async def test_an_unhandled_exception_releases_the_key(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}

        async def broken(**kwargs: Any) -> IssuedKey:
            raise RuntimeError("bug")

        monkeypatch.setattr(app.plane.api_keys, "create", broken)
        failed = await create(app, alice, "boom")
        records = await idem_records(app)
    assert failed.status_code == 500
    assert records == []


async def test_keys_are_per_principal(settings: Settings, tmp_path: Path) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        bob = {"X-API-Key": await app.key(tier="free", user="bob")}
        for_alice = await create(app, alice, "shared")
        for_bob = await create(app, bob, "shared")
    assert for_alice.status_code == for_bob.status_code == 201
    assert "idempotent-replayed" not in for_bob.headers
    assert for_bob.json()["user_uid"] == "bob"
    assert for_bob.json()["id"] != for_alice.json()["id"]


async def test_stored_answers_survive_a_new_app_on_the_same_redis(
    settings: Settings, tmp_path: Path
) -> None:
    tiers = write_tiers(tmp_path / "t.json")
    async with public_app(settings, tiers_file=tiers) as app:
        secret = await app.key(tier="free", user="alice")
        first = await create(app, {"X-API-Key": secret}, "survives")
    async with public_app(settings, tiers_file=tiers) as restarted:
        again = await create(restarted, {"X-API-Key": secret}, "survives")
        records = await idem_records(restarted)
        ttl = await restarted.resources.redis.ttl(records[0])
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert 0 < ttl <= settings.idempotency_ttl_s


@pytest.mark.parametrize(
    "value",
    ['""', "x" * 256, '"' + "x" * 256 + '"', '"unterminated', '"a" trailing', "a b", '"a\\nb"'],
)
async def test_a_malformed_key_is_a_400_problem(
    settings: Settings, tmp_path: Path, value: str
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        before = await key_count(app)
        response = await create(app, alice, value)
        after = await key_count(app)
    assert response.status_code == 400
    assert response.json()["type"] == PROBLEMS + "idempotency-key-invalid"
    assert after == before


async def test_two_key_headers_and_non_ascii_are_400(settings: Settings, tmp_path: Path) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        secret = (await app.key(tier="free", user="alice")).encode()
        two = await app.client.post(
            "/v1/api-keys",
            json={"name": "x"},
            headers=[
                (b"X-API-Key", secret),
                (b"Idempotency-Key", b"a"),
                (b"Idempotency-Key", b"b"),
            ],
        )
        non_ascii = await app.client.post(
            "/v1/api-keys",
            json={"name": "x"},
            headers=[(b"X-API-Key", secret), (b"Idempotency-Key", "caf\xe9".encode("latin-1"))],
        )
    assert two.status_code == non_ascii.status_code == 400


async def test_without_the_header_nothing_is_stored(settings: Settings, tmp_path: Path) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        before = await key_count(app)
        one = await create(app, alice, None)
        two = await create(app, alice, None)
        created = await key_count(app) - before
        records = await idem_records(app)
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]
    assert created == 2
    assert records == []


async def test_unauthenticated_request_gets_the_routes_401_counted_once(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        response = await create(app, {"X-API-Key": "nope"}, "k")
        records = await idem_records(app)
        text_ = await app.metrics()
    assert response.status_code == 401
    assert response.json()["reason"] == "malformed_api_key"
    assert records == []
    assert metric_value(text_, "gateway_auth_failures_total", reason="malformed_api_key") == 1


@pytest.mark.parametrize("padding", [300_000, 2_500_000])
async def test_a_large_body_reaches_the_route_whole(
    settings: Settings, tmp_path: Path, padding: int
) -> None:
    # JSON whitespace, replayed to the app in several chunks; the larger one is spooled
    # to disk on the way.
    body = ('{"name": "padded"' + " " * padding + "}").encode()
    async with public_app(
        settings, tiers_file=write_tiers(tmp_path / "t.json"), max_body_bytes=4_194_304
    ) as app:
        headers = {
            "X-API-Key": await app.key(tier="free", user="alice"),
            "Idempotency-Key": "big",
            "Content-Type": "application/json",
        }
        first = await app.client.post("/v1/api-keys", content=body, headers=headers)
        again = await app.client.post("/v1/api-keys", content=body, headers=headers)
    assert first.status_code == 201
    assert first.json()["name"] == "padded"
    assert again.headers["idempotent-replayed"] == "true"


async def test_redis_down_is_503_and_nothing_runs(settings: Settings, tmp_path: Path) -> None:
    assert settings.redis_url is not None
    proxy, proxied = redis_proxy(settings.redis_url)
    await proxy.start()
    try:
        async with public_app(
            settings, redis_url=proxied, tiers_file=write_tiers(tmp_path / "t.json")
        ) as app:
            alice = {"X-API-Key": await app.key(tier="free", user="alice")}
            assert (await create(app, alice, "warm")).status_code == 201  # key cached
            before = await key_count(app)
            await proxy.cut()
            down = await create(app, alice, "during")
            after = await key_count(app)
            await proxy.restore()
    finally:
        await proxy.close()
    assert down.status_code == 503
    assert down.json()["dependency"] == "redis"
    assert down.headers["retry-after"] == "1"
    assert after == before


async def test_answers_too_large_to_store_are_not_stored(
    settings: Settings, tmp_path: Path
) -> None:
    """A route answering more than IDEMPOTENCY_MAX_BODY_BYTES runs again on a repeat."""
    calls = 0

    async def big_answer(scope: Any, receive: Any, send: Any) -> None:
        nonlocal calls
        calls += 1
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
        await send({"type": "http.response.body", "body": b"y" * 1000})

    async with public_app(
        settings, tiers_file=write_tiers(tmp_path / "t.json"), idempotency_max_body_bytes=1024
    ) as app:
        headers = {"X-API-Key": await app.key(tier="free"), "Idempotency-Key": "large"}
        layer = IdempotencyLayer(big_answer, plane=app.plane)
        transport = httpx.ASGITransport(app=layer)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = await client.post("/v1/anything", content=b"{}", headers=headers)
            second = await client.post("/v1/anything", content=b"{}", headers=headers)
        records = await idem_records(app)
        text_ = await app.metrics()
    assert first.content == second.content == b"x" * 1000 + b"y" * 1000
    assert calls == 2
    assert records == []
    assert metric_value(text_, "gateway_idempotency_requests_total", outcome="not_stored") == 2


async def test_metric_outcomes_are_exported_at_zero(settings: Settings) -> None:
    async with public_app(settings) as app:
        text_ = await app.metrics()
    for outcome in ("new", "replayed", "in_flight", "mismatch", "not_stored"):
        assert (
            f'gateway_idempotency_requests_total{{audience="public",outcome="{outcome}"}} 0.0'
            in (text_)
        )


async def test_a_holder_past_its_lock_is_taken_over(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway that died mid-request blocks the key only for IDEMPOTENCY_LOCK_S."""
    async with public_app(
        settings, tiers_file=write_tiers(tmp_path / "t.json"), idempotency_lock_s=1
    ) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        entered, release = hold_creation(app, monkeypatch)
        stuck = asyncio.create_task(create(app, alice, "takeover"))
        await asyncio.wait_for(entered.wait(), 30)
        monkeypatch.undo()  # the repeat runs the real route
        answers: list[httpx.Response] = []

        async def taken_over() -> bool:
            answers.append(await asyncio.wait_for(create(app, alice, "takeover"), 30))
            return answers[-1].status_code != 409

        await wait_until(taken_over, what="the repeat taking the key over")
        release.set()
        late = await stuck
        replay = await create(app, alice, "takeover")
    assert answers[-1].status_code == 201
    assert late.status_code == 201
    # The stuck attempt's late answer was not stored: the repeat's is the one replayed.
    assert replay.json()["id"] == answers[-1].json()["id"] != late.json()["id"]
    assert json.loads(replay.content) == answers[-1].json()


async def test_replays_with_the_stock_framework_stack(settings: Settings, tmp_path: Path) -> None:
    """FASTPATH=off adds the layer as ordinary middleware: same behaviour."""
    async with public_app(
        settings, tiers_file=write_tiers(tmp_path / "t.json"), fastpath=False
    ) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        first = await create(app, alice, "stock")
        again = await create(app, alice, "stock")
        created = await key_count(app)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert created == 2  # the fixture's key and one created


async def test_a_chunked_body_over_the_limit_is_a_413_problem(
    settings: Settings, tmp_path: Path
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 65_536  # 2.5 MB in all, no Content-Length

    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        headers = {
            "X-API-Key": await app.key(tier="free", user="alice"),
            "Idempotency-Key": "chunked",
            "Content-Type": "application/json",
        }
        response = await app.client.post("/v1/api-keys", content=chunks(), headers=headers)
        records = await idem_records(app)
    assert response.status_code == 413
    assert response.json()["type"] == PROBLEMS + "payload-too-large"
    assert records == []


async def test_stored_answers_never_hold_a_secret_in_the_clear(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=write_tiers(tmp_path / "t.json")) as app:
        alice = {"X-API-Key": await app.key(tier="free", user="alice")}
        first = await create(app, alice, '"sealed-1"')
        secret = first.json()["key"]
        dumped = b""
        for record in await idem_records(app):
            for value in (await app.resources.redis.hgetall(record)).values():
                dumped += value if isinstance(value, bytes) else value.encode()
        again = await create(app, alice, '"sealed-1"')
    assert first.status_code == 201
    assert dumped  # the record is there ...
    assert secret.encode() not in dumped  # ... sealed with the client's key
    assert again.json()["key"] == secret  # and opens for the client that chose it
