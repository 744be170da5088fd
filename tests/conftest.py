"""Session backends, per-test isolation and in-process clients for the three apps.

See `tests/support/backends.py` for how tests are isolated on shared servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gateway.apps.parcel_internal import create_parcel_internal_app
from gateway.apps.party_internal import create_party_internal_app
from gateway.apps.public import create_public_app
from gateway.core.audience import Audience
from gateway.core.resources import BackendUrls, Resources, open_resources
from gateway.core.settings import Settings
from tests.support.backends import (
    BackendUnavailable,
    SessionDatabase,
    TestBackends,
    check_reachable,
    delete_prefix,
    worker_id,
)

# The webhook tests' `receiver` and `stepped` fixtures (used by tests/webhooks,
# tests/watches and tests/e2e alike).
pytest_plugins = ["tests.support.webhook_fixtures"]

FACTORIES: dict[Audience, Callable[[Resources], FastAPI]] = {
    Audience.PUBLIC: create_public_app,
    Audience.PARCEL: create_parcel_internal_app,
    Audience.PARTY: create_party_internal_app,
}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestBackends]:
    """The session's real Redis and PostgreSQL (configured, or embedded outside CI)."""
    redis_url = os.environ.get("REDIS_URL")
    database_url = os.environ.get("DATABASE_URL")
    if redis_url and database_url:
        found = TestBackends(redis_url, database_url)
        try:
            asyncio.run(check_reachable(found))
        except BackendUnavailable as exc:
            pytest.exit(f"test backends unavailable: {exc}", returncode=3)
        yield found
        return
    if _in_ci():
        pytest.exit(
            "CI=true but REDIS_URL and DATABASE_URL are not both set: "
            "CI must run against real Redis and PostgreSQL",
            returncode=3,
        )
    from gateway.embedded import EmbeddedBackends

    data_dir: Path = tmp_path_factory.mktemp("embedded")
    with EmbeddedBackends(data_dir) as embedded:
        urls = embedded.start()
        yield TestBackends(urls.redis_url, urls.database_url)


@pytest.fixture(scope="session")
def session_database(backends: TestBackends) -> Iterator[SessionDatabase]:
    """The session's own migrated database."""
    database = SessionDatabase(backends.database_url)
    asyncio.run(database.create())
    yield database
    asyncio.run(database.drop())


@pytest.fixture
async def database_url(session_database: SessionDatabase) -> str:
    """The session database, emptied for this test."""
    await session_database.reset()
    return session_database.url


@pytest.fixture
async def redis_prefix(backends: TestBackends) -> AsyncIterator[str]:
    """A Redis key prefix for this test only; its keys are deleted afterwards."""
    prefix = f"gwtest:{worker_id()}:{uuid.uuid4().hex[:10]}:"
    yield prefix
    await delete_prefix(backends.redis_url, prefix)


@pytest.fixture
def settings(backends: TestBackends, database_url: str, redis_prefix: str) -> Settings:
    """Test settings on the real backends, isolated for this test."""
    return Settings(
        _env_file=None,
        environment="test",
        redis_url=backends.redis_url,
        database_url=database_url,
        redis_key_prefix=redis_prefix,
    )


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    """Shared resources as the runner would create them."""
    assert settings.redis_url is not None
    assert settings.database_url is not None
    urls = BackendUrls(settings.redis_url, settings.database_url)
    async with open_resources(settings, urls) as opened:
        yield opened


@contextlib.asynccontextmanager
async def app_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for `app`, with its lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
            yield c


ClientFactory = Callable[[Audience], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def client_for(resources: Resources) -> ClientFactory:
    """`async with client_for(Audience.PARCEL) as client: ...`"""

    def make(audience: Audience) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
        return app_client(FACTORIES[audience](resources))

    return make


@pytest.fixture
async def public_client(client_for: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    """Client of the public app."""
    async with client_for(Audience.PUBLIC) as client:
        yield client


@pytest.fixture
async def parcel_client(client_for: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    """Client of the parcel-internal app."""
    async with client_for(Audience.PARCEL) as client:
        yield client


@pytest.fixture
async def party_client(client_for: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    """Client of the party-internal app."""
    async with client_for(Audience.PARTY) as client:
        yield client
