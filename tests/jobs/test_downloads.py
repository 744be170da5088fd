"""Signed downloads over HTTP: the rows, the link's checks, revocation, rotation, bounds.

Jobs, items, parcels and parties are inserted with SQL (as the job service and the
worker plane would leave them); the files are parsed back and compared with the rows
committed in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import io
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import text

from gateway.apps.public import create_public_app
from gateway.core.errors import Gone, ServiceUnavailable
from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import Environment, Settings
from gateway.core.settings.tiers import Tier
from gateway.jobs.downloads import DownloadService, Format
from gateway.jobs.owner import Owner
from gateway.jobs.plane import JobsPlane
from gateway.jobs.repository.downloads import columns
from tests.support.public import PublicApp, insert_parcel, public_app, write_tiers
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

OLD_KEY = ("k2026a", SecretStr("a" * 40))
NEW_KEY = ("k2026b", SecretStr("b" * 40))
# An owner for calls made on the service directly (the tier plays no part in downloads).
OWNER = Owner(
    id="user:alice",
    tier=Tier(name="free", rate_per_s=1, burst=1, daily_quota=0, max_page_size=1),
)


def _job_id() -> str:
    return "job_" + uuid.uuid4().hex[:24]


async def _owner_of(app: PublicApp, key: str) -> str:
    me = (await app.client.get("/v1/me", headers={"X-API-Key": key})).json()
    return f"{me['kind']}:{me['id']}"


async def _insert_job(
    resources: Resources,
    owner: str,
    items: list[tuple[str, str, str, str | None]],
    *,
    kind: str = "parcel_refresh",
    state: str = "running",
) -> str:
    """A job with `items` as (platform, key, item state, last error), by index."""
    job_id = _job_id()
    audience = "parcel" if kind == "parcel_refresh" else "party"
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO jobs (id, owner, kind, audience, state, total, cost_per_item)"
                " VALUES (:id, :owner, :kind, :audience, :state, :total, 1)"
            ),
            {
                "id": job_id,
                "owner": owner,
                "kind": kind,
                "audience": audience,
                "state": state,
                "total": len(items),
            },
        )
        if items:
            await session.execute(
                text(
                    "INSERT INTO job_items (job_id, idx, platform, key, state, last_error)"
                    " VALUES (:job, :idx, :platform, :key, :state, :error)"
                ),
                [
                    {"job": job_id, "idx": i, "platform": p, "key": k, "state": s, "error": e}
                    for i, (p, k, s, e) in enumerate(items)
                ],
            )
    return job_id


async def _insert_party(resources: Resources, party_id: str, name: str) -> None:
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO parties (party_id, name, kind, platform, addresses, source_url,"
                " scraped_at, extra, task_id, lease_id, updated_at) VALUES (:id, :name,"
                " 'organization', 'test', CAST(:addresses AS jsonb), :url, :at, CAST(:extra AS jsonb),"
                " :task, 'l-1', :at)"
            ),
            {
                "id": party_id,
                "name": name,
                "addresses": json.dumps([{"line1": f"{name} St, 1", "zip": "33101"}]),
                "url": f"https://example.test/{party_id}",
                "at": datetime.fromisoformat("2026-02-03T04:05:06.789+00:00"),
                "extra": json.dumps({"note": 'quote " and, comma\nnewline'}),
                "task": f"t-{party_id}",
            },
        )


async def _entities(resources: Resources, table: str, id_column: str) -> dict[str, dict[str, Any]]:
    async with resources.sessionmaker() as session:
        # Table and column names are this module's constants.
        rows = (await session.execute(text(f"SELECT * FROM {table}"))).mappings().all()  # noqa: S608
    return {row[id_column]: dict(row) for row in rows}


def _as_csv(value: Any) -> Any:
    """What a committed value reads back as from the CSV (parsed where text is ambiguous)."""
    if value is None:
        return ""
    if isinstance(value, Decimal | int):
        return str(value)
    if isinstance(value, date | datetime):
        return value
    if isinstance(value, dict | list):
        return value
    return value


def _from_csv(expected: Any, cell: str) -> Any:
    if isinstance(expected, datetime):
        return datetime.fromisoformat(cell)
    if isinstance(expected, date):
        return date.fromisoformat(cell)
    if isinstance(expected, dict | list):
        return json.loads(cell)
    return cell


def _from_json(expected: Any, value: Any) -> Any:
    if isinstance(expected, datetime):
        return datetime.fromisoformat(value)
    if isinstance(expected, date):
        return date.fromisoformat(value)
    return value


def _expected_row(
    index: int,
    item: tuple[str, str, str, str | None],
    entity: dict[str, Any] | None,
    names: tuple[str, ...],
    id_column: str,
) -> dict[str, Any]:
    platform, key, state, error = item
    row: dict[str, Any] = {
        "index": index,
        "platform": platform,
        id_column: key,
        "item_state": state,
        "last_error": error,
    }
    for name in names[5:]:
        row[name] = entity[name] if entity is not None and state == "succeeded" else None
    return row


def _parse_csv(body: str, expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(body, newline=""))
    rows = []
    for want, got in zip(expected, reader, strict=True):
        rows.append({k: _from_csv(_as_csv(want[k]), got[k]) for k in got})
    return rows


def _parse_ndjson(body: str, expected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lines = body.split("\n")
    assert lines[-1] == ""  # every row ends with a newline
    rows = []
    for want, line in zip(expected, lines[:-1], strict=True):
        got = json.loads(line, parse_float=Decimal)
        rows.append({k: _from_json(want[k], v) for k, v in got.items()})
    return rows


def _csv_view(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _as_csv(v) for k, v in row.items()} for row in rows]


async def _issue(app: PublicApp, key: str, job_id: str, fmt: str | None = None) -> httpx.Response:
    body = None if fmt is None else {"format": fmt}
    return await app.client.post(
        f"/v1/jobs/{job_id}/download", json=body, headers={"X-API-Key": key}
    )


def _path(issued: httpx.Response) -> str:
    assert issued.status_code == 200, issued.text
    url: str = issued.json()["url"]
    assert url.startswith("http://gateway.test/v1/downloads/")
    return url.removeprefix("http://gateway.test")


@pytest.fixture
def tiers(tmp_path: Path) -> Path:
    return write_tiers(tmp_path / "tiers.json")


async def test_parcel_job_rows_equal_the_committed_parcels(settings: Settings, tiers: Path) -> None:
    async with public_app(settings, tiers_file=tiers) as app:
        key = await app.key(tier="free")
        owner = await _owner_of(app, key)
        await insert_parcel(app.resources, "A-1", extra=json.dumps({"pool": 'a "b", c'}))
        await insert_parcel(app.resources, "A-2", auction_date=date(2026, 12, 10), owner_name=None)
        await insert_parcel(app.resources, "A-3", address='1, "Quoted" Rd\nUnit 2')
        items: list[tuple[str, str, str, str | None]] = [
            ("miami_dade", "A-2", "succeeded", None),
            ("miami_dade", "A-1", "succeeded", None),
            ("miami_dade", "A-9", "failed", 'upstream said 404, "gone"'),
            ("miami_dade", "A-3", "pending", None),  # a row exists, but not from this job
            ("miami_dade", "A-3", "succeeded", None),
        ]
        job_id = await _insert_job(app.resources, owner, items)
        parcels = await _entities(app.resources, "parcels", "parcel_id")
        names = columns("parcel")
        assert "state" in names  # the parcel's columns, but not the worker's bookkeeping
        assert "task_id" not in names
        expected = [
            _expected_row(i, item, parcels.get(item[1]), names, "parcel_id")
            for i, item in enumerate(items)
        ]

        issued = await _issue(app, key, job_id)
        assert issued.headers["cache-control"] == "no-store"
        assert issued.json()["format"] == "csv"
        expires = datetime.fromisoformat(issued.json()["expires_at"])
        assert 3500 < expires.timestamp() - time.time() <= 3600

        # No credentials: the link is enough.
        got = await app.client.get(_path(issued))
        assert got.status_code == 200
        assert got.headers["content-type"] == "text/csv; charset=utf-8"
        assert got.headers["content-disposition"] == f'attachment; filename="{job_id}.csv"'
        assert got.headers["cache-control"] == "no-store"
        assert got.text.splitlines()[0] == ",".join(names)
        assert _parse_csv(got.text, expected) == _csv_view(expected)

        ndjson = await app.client.get(_path(await _issue(app, key, job_id, "ndjson")))
        assert ndjson.status_code == 200
        assert ndjson.headers["content-type"] == "application/x-ndjson"
        assert ndjson.headers["content-disposition"] == f'attachment; filename="{job_id}.ndjson"'
        parsed = _parse_ndjson(ndjson.text, expected)
        assert [list(r) for r in parsed] == [list(names)] * len(items)  # keys in file order
        assert parsed == expected


async def test_party_job_rows_equal_the_committed_parties(settings: Settings, tiers: Path) -> None:
    async with public_app(settings, tiers_file=tiers) as app:
        key = await app.key(tier="free")
        owner = await _owner_of(app, key)
        await _insert_party(app.resources, "P-1", 'Acme, "Holdings"')
        await _insert_party(app.resources, "P-2", "Zed")
        items: list[tuple[str, str, str, str | None]] = [
            ("test", "P-2", "succeeded", None),
            ("test", "P-1", "succeeded", None),
            ("test", "P-7", "expired", None),
        ]
        job_id = await _insert_job(app.resources, owner, items, kind="party_refresh")
        parties = await _entities(app.resources, "parties", "party_id")
        names = columns("party")
        expected = [
            _expected_row(i, item, parties.get(item[1]), names, "party_id")
            for i, item in enumerate(items)
        ]
        got = await app.client.get(_path(await _issue(app, key, job_id, "csv")))
        assert got.status_code == 200
        assert _parse_csv(got.text, expected) == _csv_view(expected)
        ndjson = await app.client.get(_path(await _issue(app, key, job_id, "ndjson")))
        assert _parse_ndjson(ndjson.text, expected) == expected


async def test_tampered_tokens_are_403_problems(settings: Settings, tiers: Path) -> None:
    async with public_app(settings, tiers_file=tiers) as app:
        key = await app.key(tier="free")
        job_id = await _insert_job(
            app.resources, await _owner_of(app, key), [("t", "A-1", "pending", None)]
        )
        path = _path(await _issue(app, key, job_id))
        token = path.removeprefix("/v1/downloads/")
        body, signature = token.split(".")

        def flip(s: str, at: int) -> str:
            return s[:at] + ("B" if s[at] == "A" else "A") + s[at + 1 :]

        assert (await app.client.get(path)).status_code == 200
        for forged in (f"{flip(body, 5)}.{signature}", f"{body}.{flip(signature, 3)}", "x.y"):
            refused = await app.client.get(f"/v1/downloads/{forged}")
            assert refused.status_code == 403
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"].endswith("/forbidden")


async def test_expired_and_revoked_links_are_410(settings: Settings, tiers: Path) -> None:
    # No upkeep pass or delivery step: either would hold a pool connection while the
    # test counts them.
    quiet = {
        "job_upkeep_interval_s": 3600,
        "webhook_dispatch_interval_s": 3600,
        "webhook_listen": False,
    }
    async with public_app(settings, tiers_file=tiers, **quiet) as app:
        key = await app.key(tier="free")
        other = await app.key(tier="free", user="bob")
        owner = await _owner_of(app, key)
        job_id = await _insert_job(app.resources, owner, [("t", "A-1", "pending", None)])
        past = time.time() - 2 * settings.download_url_ttl_s
        service = DownloadService(app.resources)  # links are stateless: any service verifies
        old = await service.issue(dataclasses.replace(OWNER, id=owner), job_id, "csv", now=past)
        expired = await app.client.get(old.path)
        assert expired.status_code == 410
        assert "expired" in expired.json()["detail"]

        first = _path(await _issue(app, key, job_id))
        assert (await app.client.get(first)).status_code == 200
        # Only the owner may revoke; for anyone else the job does not exist.
        refused = await app.client.post(
            f"/v1/jobs/{job_id}/download/revoke", headers={"X-API-Key": other}
        )
        assert refused.status_code == 404
        assert (await app.client.get(first)).status_code == 200
        revoked = await app.client.post(
            f"/v1/jobs/{job_id}/download/revoke", headers={"X-API-Key": key}
        )
        assert revoked.status_code == 204
        gone = await app.client.get(first)
        assert gone.status_code == 410
        assert "revoked" in gone.json()["detail"]
        # A refused link holds nothing: its slot and its connection are back.
        with pytest.raises(Gone):
            await service.open(first.removeprefix("/v1/downloads/"))
        assert service.active == 0
        assert app.resources.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        # A link issued after the revocation works.
        assert (await app.client.get(_path(await _issue(app, key, job_id)))).status_code == 200


async def test_a_link_stops_working_when_the_job_changes_owner_or_goes_away(
    settings: Settings, tiers: Path
) -> None:
    async with public_app(settings, tiers_file=tiers) as app:
        key = await app.key(tier="free")
        job_id = await _insert_job(
            app.resources, await _owner_of(app, key), [("t", "A-1", "pending", None)]
        )
        path = _path(await _issue(app, key, job_id))
        async with app.resources.sessionmaker() as session, session.begin():
            await session.execute(
                text("UPDATE jobs SET owner = 'user:someone-else' WHERE id = :id"), {"id": job_id}
            )
        assert (await app.client.get(path)).status_code == 403
        async with app.resources.sessionmaker() as session, session.begin():
            await session.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": job_id})
        assert (await app.client.get(path)).status_code == 410


async def test_key_rotation(settings: Settings, tiers: Path) -> None:
    async with public_app(settings, tiers_file=tiers, download_signing_keys=[OLD_KEY]) as app:
        key = await app.key(tier="free")
        job_id = await _insert_job(
            app.resources, await _owner_of(app, key), [("t", "A-1", "pending", None)]
        )
        old_link = _path(await _issue(app, key, job_id))
        assert (await app.client.get(old_link)).status_code == 200

    rotated = [NEW_KEY, OLD_KEY]
    async with public_app(settings, tiers_file=tiers, download_signing_keys=rotated) as app:
        assert (await app.client.get(old_link)).status_code == 200  # the old key still verifies
        new_link = _path(await _issue(app, key, job_id))
        assert (await app.client.get(new_link)).status_code == 200

    async with public_app(settings, tiers_file=tiers, download_signing_keys=[NEW_KEY]) as app:
        dropped = await app.client.get(old_link)
        assert dropped.status_code == 403
        assert "unknown key" in dropped.json()["detail"]
        assert (await app.client.get(new_link)).status_code == 200


async def test_only_the_owner_gets_a_link(settings: Settings, tiers: Path) -> None:
    async with public_app(settings, tiers_file=tiers) as app:
        alice = await app.key(tier="free")
        bob = await app.key(tier="free", user="bob")
        owner = await _owner_of(app, alice)
        job_id = await _insert_job(app.resources, owner, [("t", "A-1", "pending", None)])
        hidden = await _insert_job(
            app.resources, owner, [("t", "A-1", "pending", None)], state="submitting"
        )
        assert (await _issue(app, alice, job_id)).status_code == 200
        for who, job in ((bob, job_id), (alice, hidden), (alice, _job_id()), (alice, "nope")):
            refused = await _issue(app, who, job)
            assert refused.status_code == 404
            assert refused.json()["type"].endswith("/not-found")
        assert (await app.client.post(f"/v1/jobs/{job_id}/download")).status_code in (401, 403)
        bad = await _issue(app, alice, job_id, "xlsx")
        assert bad.status_code == 422


async def test_production_without_signing_keys_refuses_to_issue(
    settings: Settings, resources: Resources
) -> None:
    production = settings.model_copy(update={"environment": Environment.PRODUCTION})
    service = DownloadService(dataclasses.replace(resources, settings=production))
    with pytest.raises(ServiceUnavailable, match="DOWNLOAD_SIGNING_KEYS"):
        await service.issue(OWNER, _job_id(), "csv")
    # Nor does it accept links signed with the (public) development key.
    dev_token = DownloadService(resources).signer.sign(
        job=_job_id(), owner="user:alice", fmt="csv", gen=1, ttl_s=60
    )[0]
    with pytest.raises(Exception, match="unknown key") as refused:
        await service.open(dev_token)
    assert getattr(refused.value, "status", None) == 403


# --- a real server: what a client that goes away (or holds on) leaves behind -----------


@dataclasses.dataclass
class Served:
    """The public app under a real uvicorn server, its resources and its jobs plane."""

    base_url: str
    resources: Resources
    jobs: JobsPlane


@contextlib.asynccontextmanager
async def _served(settings: Settings, **overrides: Any) -> AsyncIterator[Served]:
    """The public app on a real socket: ASGITransport buffers whole bodies, so neither a
    disconnect nor a slow reader can be shown through it."""
    # No upkeep pass or webhook delivery step during the test: the tests count the pool's
    # checked-out connections, and either holds one for as long as it runs.
    quiet = {
        "job_upkeep_interval_s": 3600,
        "webhook_dispatch_interval_s": 3600,
        "webhook_listen": False,
    }
    s = settings.model_copy(update={**quiet, **overrides})
    assert s.redis_url is not None
    assert s.database_url is not None
    async with open_resources(s, BackendUrls(s.redis_url, s.database_url)) as resources:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        app = create_public_app(resources)
        server = uvicorn.Server(
            uvicorn.Config(app, log_config=None, lifespan="on", interface="asgi3")
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await wait_until(lambda: server.started, what="uvicorn listening")
        try:
            yield Served(
                f"http://127.0.0.1:{sock.getsockname()[1]}", resources, app.state.planes["jobs"]
            )
        finally:
            server.should_exit = True
            await task
            sock.close()


BIG_JOB_ROWS = 50_000  # megabytes: far more than socket buffers and the bounded queue hold


async def _big_job(resources: Resources, owner: str) -> str:
    """A job of `BIG_JOB_ROWS` succeeded parcels, inserted by PostgreSQL itself."""
    job_id = _job_id()
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO jobs (id, owner, kind, audience, state, total, cost_per_item)"
                " VALUES (:id, :owner, 'parcel_refresh', 'parcel', 'running', :n, 1)"
            ),
            {"id": job_id, "owner": owner, "n": BIG_JOB_ROWS},
        )
        await session.execute(
            text(
                "INSERT INTO parcels (parcel_id, state, county, platform, address, scraped_at,"
                " task_id, lease_id) SELECT 'D-' || g, 'FL', 'Miami-Dade', 't',"
                " g || ' Long Street Name Avenue', now(), 't-' || g, 'l'"
                " FROM generate_series(1, :n) g ON CONFLICT DO NOTHING"
            ),
            {"n": BIG_JOB_ROWS},
        )
        await session.execute(
            text(
                "INSERT INTO job_items (job_id, idx, platform, key, state)"
                " SELECT :id, g - 1, 't', 'D-' || g, 'succeeded' FROM generate_series(1, :n) g"
            ),
            {"id": job_id, "n": BIG_JOB_ROWS},
        )
    return job_id


async def _exports_running(resources: Resources) -> int:
    """Export statements PostgreSQL is still running for this database."""
    async with resources.engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state <> 'idle'"
                " AND query LIKE '%FROM job_items i LEFT JOIN%'"
            )
        )
        return int(found.scalar_one())


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
async def test_a_client_that_disconnects_frees_its_connection(
    settings: Settings, tiers: Path, fmt: Format
) -> None:
    async with _served(settings, tiers_file=tiers) as served:
        job_id = await _big_job(served.resources, OWNER.id)
        link = await served.jobs.downloads.issue(OWNER, job_id, fmt)
        pool: Any = served.resources.engine.pool
        client = httpx.AsyncClient(base_url=served.base_url)
        async with client, client.stream("GET", link.path) as response:
            assert response.status_code == 200
            async for _ in response.aiter_raw():
                break  # one chunk, then hang up with the rest unread
            # Mid-stream the download holds its connection and its slot.
            assert pool.checkedout() == 1
            assert served.jobs.downloads.active == 1
        await wait_until(lambda: pool.checkedout() == 0, what="the connection released")
        assert served.jobs.downloads.active == 0

        async def statement_ended() -> bool:
            return await _exports_running(served.resources) == 0

        await wait_until(statement_ended, what="the export statement ended in PostgreSQL")
        # The pool still serves: the next download of the same job is complete.
        async with httpx.AsyncClient(base_url=served.base_url, timeout=60) as client:
            whole = await client.get(link.path)
        assert whole.status_code == 200
        assert whole.text.count("\n") == BIG_JOB_ROWS + (1 if fmt == "csv" else 0)
        await wait_until(lambda: pool.checkedout() == 0, what="the connection returned")


async def test_a_slow_reader_holds_a_slot_and_the_next_download_is_refused(
    settings: Settings, tiers: Path
) -> None:
    async with _served(settings, tiers_file=tiers, download_max_concurrent=1) as served:
        job_id = await _big_job(served.resources, OWNER.id)
        link = await served.jobs.downloads.issue(OWNER, job_id, "csv")
        async with httpx.AsyncClient(base_url=served.base_url) as client:
            async with client.stream("GET", link.path) as held:
                assert held.status_code == 200  # and not read: the reader stalls
                busy = await client.get(link.path)
                assert busy.status_code == 503
                assert busy.headers["retry-after"] == "5"
                assert busy.headers["content-type"] == "application/problem+json"
            await wait_until(
                lambda: served.jobs.downloads.active == 0, what="the held download released"
            )
            again = await client.get(link.path)
            assert again.status_code == 200
