"""Redis persistence read at start: production refuses Redis that would lose queued work."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.core.audience import Audience
from gateway.core.redis import create_redis
from gateway.core.redis_persistence import (
    RedisPersistence,
    RedisPersistenceRefused,
    read_persistence,
)
from gateway.core.resources import BackendUrls, open_resources
from gateway.core.settings import Environment, Settings
from tests.conftest import FACTORIES, app_client
from tests.support.ports import free_port
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


def production(settings: Settings, **update: object) -> Settings:
    """`settings` with ENVIRONMENT=production (other production rules are tested elsewhere)."""
    return settings.model_copy(update={"environment": Environment.PRODUCTION, **update})


def urls(settings: Settings, redis_url: str | None = None) -> BackendUrls:
    assert settings.redis_url is not None
    assert settings.database_url is not None
    return BackendUrls(redis_url or settings.redis_url, settings.database_url)


@pytest.fixture
async def aof_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of this test's own with AOF on."""
    server = RedisServer(tmp_path / "aof", "--appendonly", "yes", "--appendfsync", "everysec")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def volatile_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of this test's own that keeps nothing on disk, like this machine's.

    Not the session's Redis: in embedded mode that one runs with AOF.
    """
    server = RedisServer(tmp_path / "volatile", "--appendonly", "no", "--save", "")
    server.start()
    yield server
    server.stop()


async def test_production_refuses_a_volatile_redis(
    settings: Settings, volatile_server: RedisServer
) -> None:
    # Nothing on disk: a restart would lose queued tasks.
    with pytest.raises(RedisPersistenceRefused, match="REDIS_ALLOW_VOLATILE=true"):
        async with open_resources(production(settings), urls(settings, volatile_server.url)):
            pass


async def test_volatile_redis_is_accepted_when_the_operator_says_so(
    settings: Settings, volatile_server: RedisServer
) -> None:
    accepted = production(settings, redis_allow_volatile=True)
    async with (
        open_resources(accepted, urls(settings, volatile_server.url)) as resources,
        app_client(FACTORIES[Audience.PUBLIC](resources)) as client,
    ):
        ready = (await client.get("/ready")).json()
        metrics = (await client.get("/metrics")).text
    mode = ready["checks"]["redis"]["persistence"]["mode"]
    assert mode == "none"
    assert f'gateway_redis_persistence{{audience="public",mode="{mode}"}} 1.0' in metrics
    assert 'gateway_redis_persistence{audience="public",mode="aof"} 0.0' in metrics


async def test_production_starts_on_redis_with_aof(
    settings: Settings, aof_server: RedisServer
) -> None:
    async with (
        open_resources(production(settings), urls(settings, aof_server.url)) as resources,
        app_client(FACTORIES[Audience.PARCEL](resources)) as client,
    ):
        ready = (await client.get("/ready")).json()
        metrics = (await client.get("/metrics")).text
    assert ready["checks"]["redis"]["persistence"] == {
        "mode": "aof",
        "appendfsync": "everysec",
        "source": "config",
    }
    assert 'gateway_redis_persistence{audience="parcel",mode="aof"} 1.0' in metrics


@pytest.mark.parametrize(
    ("appendonly", "expected"),
    [
        ("yes", RedisPersistence("aof", source="info")),
        ("no", RedisPersistence("unknown", source="info")),
    ],
)
async def test_without_config_the_mode_comes_from_info(
    tmp_path: Path, appendonly: str, expected: RedisPersistence
) -> None:
    # Managed services often disable CONFIG; INFO still says whether AOF is on, but not
    # whether snapshots are configured, so a non-AOF server reads as "unknown".
    server = RedisServer(
        tmp_path / "r", "--appendonly", appendonly, "--rename-command", "CONFIG", ""
    )
    server.start()
    client = create_redis(server.url, max_connections=2)
    try:
        assert await read_persistence(client) == expected
    finally:
        await client.aclose()
        server.stop()


async def test_an_unreachable_redis_reads_as_unknown() -> None:
    client = create_redis(f"redis://127.0.0.1:{free_port()}/0", max_connections=1)
    try:
        assert await read_persistence(client) == RedisPersistence("unknown", source="none")
    finally:
        await client.aclose()


def test_serve_in_production_on_volatile_redis_exits_with_the_fix(
    tmp_path: Path, settings: Settings, volatile_server: RedisServer
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_"))},
        "ENVIRONMENT": "production",
        "REDIS_URL": volatile_server.url,
        "DATABASE_URL": str(settings.database_url),
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "PUBLIC_PORT": str(free_port()),
        "PARCEL_INTERNAL_PORT": str(free_port()),
        "PARTY_INTERNAL_PORT": str(free_port()),
        "LOG_FORMAT": "json",
    }
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    fix_lines = [line for line in result.stderr.splitlines() if "REDIS_ALLOW_VOLATILE" in line]
    assert any(line.startswith("gateway: ENVIRONMENT=production refuses") for line in fix_lines)
