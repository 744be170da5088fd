"""Helpers for public-plane tests: apps with overridden settings, keys, parcel rows."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text

from gateway.apps.public import create_public_app
from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import Settings
from gateway.public.plane import PublicPlane
from tests.conftest import app_client
from tests.support.audit import TEST_ACTOR


@dataclass
class PublicApp:
    """An in-process public app with its resources and plane."""

    client: httpx.AsyncClient
    resources: Resources
    plane: PublicPlane

    async def key(self, *, tier: str, user: str | None = "alice", name: str = "test") -> str:
        """A fresh API key for `user` (or a service key)."""
        issued = await self.plane.api_keys.create(
            name=name, tier=tier, user_uid=user, actor=TEST_ACTOR
        )
        return issued.secret

    async def metrics(self) -> str:
        """The public port's metrics text."""
        return (await self.client.get("/metrics")).text


@contextlib.asynccontextmanager
async def public_app(settings: Settings, **overrides: Any) -> AsyncIterator[PublicApp]:
    """Open resources for `settings` + overrides and serve the public app in-process."""
    s = settings.model_copy(update=overrides)
    assert s.redis_url is not None
    assert s.database_url is not None
    async with open_resources(s, BackendUrls(s.redis_url, s.database_url)) as resources:
        app = create_public_app(resources)
        async with app_client(app) as client:
            yield PublicApp(client, resources, app.state.planes["public"])


def write_tiers(path: Path, **tiers: dict[str, Any]) -> Path:
    """A TIERS_FILE (JSON) with the given tiers plus a `free` default."""
    body = {
        "tiers": {
            "free": {"rate_per_s": 100, "burst": 1000, "daily_quota": 0, "max_page_size": 25},
            **tiers,
        }
    }
    path.write_text(json.dumps(body))
    return path


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def insert_parcel(resources: Resources, parcel_id: str, **fields: Any) -> None:
    """Insert a `parcels` row (as the worker plane would) plus one history row."""
    row = {
        "parcel_id": parcel_id,
        "state": "FL",
        "county": "Miami-Dade",
        "platform": "test",
        "address": f"{parcel_id} Main St",
        "owner_name": "Jane Doe",
        "assessed_value": "100000.00",
        "tax_amount_due": "1234.56",
        "lien_status": "active",
        "scraped_at": datetime(2026, 1, 1, tzinfo=UTC),
        "task_id": f"t-{parcel_id}",
        "lease_id": "l-1",
        **fields,
    }
    columns = ", ".join(row)
    values = ", ".join(f":{k}" for k in row)
    async with resources.sessionmaker() as session, session.begin():
        # Column names come from this function's own keys; values are bound.
        await session.execute(text(f"INSERT INTO parcels ({columns}) VALUES ({values})"), row)  # noqa: S608
        history_row = dict(row.items())
        await session.execute(
            text(f"INSERT INTO parcel_history ({columns}) VALUES ({values})"),  # noqa: S608
            history_row,
        )


async def insert_history(resources: Resources, parcel_id: str, count: int) -> None:
    """Append `count` more history rows for a parcel."""
    async with resources.sessionmaker() as session, session.begin():
        for i in range(count):
            await session.execute(
                text(
                    "INSERT INTO parcel_history (parcel_id, state, county, platform, scraped_at,"
                    " task_id, lease_id, tax_amount_due) VALUES (:p, 'FL', 'Miami-Dade', 'test',"
                    " now(), :t, 'l', :amt)"
                ),
                {"p": parcel_id, "t": f"h-{parcel_id}-{i}", "amt": i},
            )
