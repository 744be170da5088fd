"""Helpers for job tests: the public app and both worker apps on one set of resources."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from fastapi import FastAPI
from sqlalchemy import text

from gateway.apps.parcel_internal import create_parcel_internal_app
from gateway.apps.party_internal import create_party_internal_app
from gateway.apps.public import create_public_app
from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import Settings
from gateway.jobs.plane import JobsPlane
from gateway.public.plane import PublicPlane
from tests.conftest import app_client
from tests.support.audit import TEST_ACTOR
from tests.support.wait import wait_until
from tests.support.work import lease, make_token, parcel_data, post_results, succeeded

SCHEMA_PATH = Path(__file__).parents[2] / "gateway" / "jobs" / "schemas" / "job-event.schema.json"
PLATFORMS = {"parcel": ["alpha", "beta"], "party": ["alpha"]}


def event_validator() -> Callable[[dict[str, Any]], None]:
    """Validates one event document against the published JSON Schema."""
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)

    def validate(event: dict[str, Any]) -> None:
        validator.validate(event)

    return validate


@dataclass
class JobsHarness:
    """In-process public, parcel and party apps sharing resources (one gateway)."""

    resources: Resources
    public: httpx.AsyncClient
    parcel: httpx.AsyncClient
    party: httpx.AsyncClient
    public_plane: PublicPlane
    jobs: JobsPlane
    public_app: FastAPI
    parcel_app: FastAPI  # its lifespan runs; serve it with `served` for out-of-process workers

    async def key(self, *, tier: str = "pro", user: str | None = "alice") -> str:
        """A fresh API key of `user`."""
        issued = await self.public_plane.api_keys.create(
            name="t", tier=tier, user_uid=user, actor=TEST_ACTOR
        )
        return issued.secret

    async def admin_key(self, user: str = "root") -> str:
        """An API key of a user with the admin role."""
        await self.public_plane.users.set_role(user, "admin", actor=TEST_ACTOR)
        return await self.key(user=user)

    async def worker_token(self, audience: str = "parcel") -> str:
        """A worker token of `audience`."""
        return await make_token(self.resources, audience, "worker")

    async def producer_token(self, audience: str = "parcel") -> str:
        """A producer token of `audience`."""
        return await make_token(self.resources, audience, "producer")

    async def submit(
        self, key: str, parcel_ids: list[str], *, platform: str = "alpha", **extra: Any
    ) -> httpx.Response:
        """POST /v1/jobs for these parcels."""
        body = {
            "kind": "parcel_refresh",
            "items": [{"platform": platform, "parcel_id": p} for p in parcel_ids],
            **extra,
        }
        return await self.public.post("/v1/jobs", json=body, headers={"X-API-Key": key})

    async def job(self, key: str, job_id: str) -> dict[str, Any]:
        """GET /v1/jobs/{id} (asserting 200)."""
        response = await self.public.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": key})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def scrape(
        self,
        token: str,
        *,
        worker_id: str = "w1",
        platforms: str = "alpha",
        limit: int = 100,
        fail: Callable[[dict[str, Any]], bool] = lambda task: False,
    ) -> list[dict[str, Any]]:
        """Lease up to `limit` parcel tasks and post a result for each (a failure, not
        retryable, where `fail(task)`); the leased tasks."""
        tasks = await lease(
            self.parcel, token, worker_id=worker_id, platforms=platforms, limit=limit
        )
        if not tasks:
            return []
        results = []
        for task in tasks:
            if fail(task):
                results.append(
                    {
                        "task_id": task["task_id"],
                        "lease_id": task["lease_id"],
                        "status": "failed",
                        "error": {"message": "county site says no", "retryable": False},
                    }
                )
            else:
                results.append(succeeded(task, parcel_data(task["key"])))
        response = await post_results(self.parcel, token, results, worker_id=worker_id)
        assert response.status_code == 200, response.text
        return tasks

    async def wait_state(self, key: str, job_id: str, *states: str) -> dict[str, Any]:
        """Wait until the job is in one of `states`; the job."""
        found: dict[str, Any] = {}

        async def reached() -> bool:
            found.update(await self.job(key, job_id))
            return found["state"] in states

        await wait_until(reached, what=f"job {job_id} in {states}")
        return found

    async def count(self, sql: str, **params: Any) -> int:
        """One integer from PostgreSQL."""
        async with self.resources.sessionmaker() as session:
            value = (await session.execute(text(sql), params)).scalar_one()
        return int(value)


@contextlib.asynccontextmanager
async def jobs_harness(settings: Settings, **overrides: Any) -> AsyncIterator[JobsHarness]:
    """Resources for `settings` + overrides (known platforms preset) and the three apps."""
    tuned = settings.model_copy(update={"job_platforms": PLATFORMS, **overrides})
    assert tuned.redis_url is not None
    assert tuned.database_url is not None
    async with open_resources(tuned, BackendUrls(tuned.redis_url, tuned.database_url)) as res:
        public = create_public_app(res)
        parcel = create_parcel_internal_app(res)
        async with (
            app_client(public) as public_client,
            app_client(parcel) as parcel_client,
            app_client(create_party_internal_app(res)) as party_client,
        ):
            yield JobsHarness(
                res,
                public_client,
                parcel_client,
                party_client,
                public.state.planes["public"],
                public.state.planes["jobs"],
                public,
                parcel,
            )
