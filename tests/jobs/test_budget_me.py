"""`GET /v1/me` shows job credits: for a Firebase user, for an API key, none for anonymous.

Jobs rows are written directly (as the job service and the results path leave them), so
what `/v1/me` reports is checked against known counters.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.core.resources import Resources
from gateway.core.settings import Settings
from tests.support.firebase_emulator import AuthEmulator, run_emulator
from tests.support.public import public_app, write_tiers

pytestmark = pytest.mark.integration

_LIMITS = {"rate_per_s": 100, "burst": 1000, "daily_quota": 0, "max_page_size": 25}


@pytest.fixture(scope="session")
def auth_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthEmulator]:
    """The real Firebase Auth emulator, started once per session (per xdist worker)."""
    yield from run_emulator(tmp_path_factory.mktemp("firebase"))


def _tiers(tmp_path: Path) -> Path:
    return write_tiers(
        tmp_path / "tiers.json",
        free={**_LIMITS, "credits_per_day": 100, "credit_cost": {"parcel_refresh": 2}},
        pro={**_LIMITS, "credits_per_day": 1000, "credits_per_month": 5000},
    )


async def _job(resources: Resources, owner: str, *, total: int, cost: int, **counts: int) -> None:
    async with resources.sessionmaker() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO jobs (id, owner, kind, audience, state, total, cost_per_item,"
                " succeeded, failed, cancelled, expired)"
                " VALUES (:id, :owner, 'parcel_refresh', 'parcel', 'running', :total, :cost,"
                " :succeeded, :failed, :cancelled, 0)"
            ),
            {
                "id": "job_" + uuid.uuid4().hex[:24],
                "owner": owner,
                "total": total,
                "cost": cost,
                "succeeded": counts.get("succeeded", 0),
                "failed": counts.get("failed", 0),
                "cancelled": counts.get("cancelled", 0),
            },
        )


def _is_utc_midnight(value: str) -> bool:
    at = datetime.fromisoformat(value)
    return at.utcoffset() == timedelta(0) and (at.hour, at.minute, at.second) == (0, 0, 0)


async def test_me_shows_an_api_keys_credits_apart_from_its_users_other_keys(
    settings: Settings, tmp_path: Path
) -> None:
    async with public_app(settings, tiers_file=_tiers(tmp_path)) as app:
        secret = await app.key(tier="pro", user="alice")
        other = await app.key(tier="pro", user="alice")
        key_id = secret.split("_")[1]
        # 10 items at 3: 4 succeeded (charged 12), 1 failed and 1 cancelled (released),
        # 4 pending (reserved 12).
        await _job(
            app.resources, f"api_key:{key_id}", total=10, cost=3, succeeded=4, failed=1, cancelled=1
        )
        me = await app.client.get("/v1/me", headers={"X-API-Key": secret})
        fresh = await app.client.get("/v1/me", headers={"X-API-Key": other})

    assert me.status_code == 200, me.text
    credits: dict[str, Any] = me.json()["credits"]
    day, month = credits["day"], credits["month"]
    assert {k: day[k] for k in ("charged", "reserved", "limit", "remaining")} == {
        "charged": 12,
        "reserved": 12,
        "limit": 1000,
        "remaining": 976,
    }
    assert {k: month[k] for k in ("charged", "reserved", "limit", "remaining")} == {
        "charged": 12,
        "reserved": 12,
        "limit": 5000,
        "remaining": 4976,
    }
    assert _is_utc_midnight(day["resets_at"])
    assert _is_utc_midnight(month["resets_at"])
    assert datetime.fromisoformat(month["resets_at"]).day == 1
    # Keys of one user own their jobs (and credits) separately.
    assert fresh.json()["credits"]["day"]["reserved"] == 0
    assert fresh.json()["credits"]["day"]["remaining"] == 1000


async def test_me_shows_a_users_credits(
    settings: Settings,
    auth_emulator: AuthEmulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", auth_emulator.host)
    email = f"u{uuid.uuid4().hex[:10]}@example.com"
    uid = auth_emulator.sign_up(email)["localId"]
    token = auth_emulator.sign_in(email)
    async with public_app(
        settings,
        tiers_file=_tiers(tmp_path),
        firebase_project_id=auth_emulator.project,
        firebase_auth_emulator_host=auth_emulator.host,
        user_cache_s=0,
    ) as app:
        await _job(app.resources, f"user:{uid}", total=5, cost=2, succeeded=5)
        me = await app.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})

    assert me.status_code == 200, me.text
    assert me.json()["kind"] == "user"
    credits = me.json()["credits"]
    assert credits["day"]["charged"] == 10
    assert credits["day"]["reserved"] == 0
    assert credits["day"]["remaining"] == 90
    assert credits["month"] is None  # the free tier here has no monthly limit


async def test_anonymous_callers_have_no_credits(settings: Settings, tmp_path: Path) -> None:
    async with public_app(settings, tiers_file=_tiers(tmp_path), anonymous_tier="free") as app:
        me = await app.client.get("/v1/me")
    assert me.status_code == 200, me.text
    assert me.json()["kind"] == "anonymous"
    assert me.json()["credits"] is None
