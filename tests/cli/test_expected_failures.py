"""States of an installation an operator meets (not migrated, no database, a backend
down, output piped into `head`): one line naming the fix, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.core.settings import Settings
from tests.support.backends import TestBackends, database_url_for
from tests.support.gateway_process import run_gateway
from tests.support.migrations import fresh_database
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


async def test_a_database_never_migrated_says_run_migrate(
    backends: TestBackends, redis_prefix: str, tmp_path: Path
) -> None:
    async with fresh_database(backends, "nomigrate") as url:
        env = {
            "REDIS_URL": backends.redis_url,
            "DATABASE_URL": url,
            "REDIS_KEY_PREFIX": redis_prefix,
        }
        for args in (
            ["keys", "list"],
            ["tokens", "list"],
            ["users", "set-tier", "u1", "free"],
        ):
            result = run_gateway(args, env, tmp_path)
            assert result.returncode == 1
            assert _one_line(result) == (
                "gateway: the database has no gateway tables yet: run `gateway migrate`"
            )
        # ... and after `gateway migrate` the same command works.
        assert run_gateway(["migrate"], env, tmp_path).returncode == 0
        assert run_gateway(["keys", "list"], env, tmp_path).returncode == 0


def test_serve_and_migrate_on_a_missing_database_name_the_fix(
    backends: TestBackends, redis_prefix: str, tmp_path: Path
) -> None:
    url = database_url_for(backends.database_url, "gw_no_such_db")
    env = {
        "REDIS_URL": backends.redis_url,
        "DATABASE_URL": url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "PUBLIC_PORT": str(free_port()),
        "PARCEL_INTERNAL_PORT": str(free_port()),
        "PARTY_INTERNAL_PORT": str(free_port()),
    }
    for args in (["serve"], ["migrate"]):
        result = run_gateway(args, env, tmp_path)
        assert result.returncode == 1
        line = _one_line(result)
        assert line.startswith('gateway: database "gw_no_such_db" does not exist')
        assert "createdb gw_no_such_db" in line
        assert "DATABASE_URL" in line


def test_an_unreachable_backend_is_one_line(settings: Settings, tmp_path: Path) -> None:
    closed = free_port()
    no_db = {
        "REDIS_URL": str(settings.redis_url),
        "DATABASE_URL": f"postgresql://gw:s3cret@127.0.0.1:{closed}/gw",
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
    }
    result = run_gateway(["keys", "list"], no_db, tmp_path)
    assert result.returncode == 1
    line = _one_line(result)
    assert line.startswith(
        f"gateway: cannot reach PostgreSQL at postgresql://gw:[redacted]@127.0.0.1:{closed}/gw"
    )
    assert "s3cret" not in line

    no_redis = {
        **no_db,
        "DATABASE_URL": str(settings.database_url),
        "REDIS_URL": f"redis://127.0.0.1:{closed}/0",
    }
    result = run_gateway(["workers", "list", "--audience", "parcel"], no_redis, tmp_path)
    assert result.returncode == 1
    assert _one_line(result) == (
        f"gateway: cannot reach Redis at redis://127.0.0.1:{closed}/0: start it, or fix REDIS_URL"
    )


def test_output_into_a_closed_pipe_ends_quietly(settings: Settings, tmp_path: Path) -> None:
    # `gateway keys list | head -n0`, made deterministic: the reader is gone before the
    # command writes anything.
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {
        **{k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}},
        "REDIS_URL": str(settings.redis_url),
        "DATABASE_URL": str(settings.database_url),
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
    }
    try:
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "tokens", "list", "--all"],
            env=env,
            cwd=tmp_path,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert result.stderr == ""
