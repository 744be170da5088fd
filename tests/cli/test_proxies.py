"""`gateway proxies add|list|remove` as an operator runs them (real subprocess)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.support import backends as test_backends
from tests.support.gateway_process import run_gateway

SECRET = "hunter2-very-secret"


def _env(
    backends: test_backends.TestBackends, database_url: str, redis_prefix: str
) -> dict[str, str]:
    return {
        "REDIS_URL": backends.redis_url,
        "DATABASE_URL": database_url,
        "REDIS_KEY_PREFIX": redis_prefix,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "debug",
    }


def _output(result: subprocess.CompletedProcess[str]) -> str:
    """Standard output without the (debug-level) JSON log lines interleaved with it."""
    return "\n".join(line for line in result.stdout.splitlines() if not line.startswith('{"event"'))


def test_add_list_remove_never_print_the_password(
    backends: test_backends.TestBackends, database_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = _env(backends, database_url, redis_prefix)
    urls = tmp_path / "proxies.txt"
    urls.write_text(
        f"# purchased 2026-11\nhttp://bob:{SECRET}@127.0.0.2:3128\n\nsocks5://127.0.0.3:1080\n"
        f"http://bob:{SECRET}@127.0.0.2:3128\n"
    )

    added = run_gateway(["proxies", "add", "--file", str(urls)], env, tmp_path)
    assert added.returncode == 0, added.stderr
    assert _output(added).splitlines() == [
        "added 1 http://bob:****@127.0.0.2:3128",
        "added 2 socks5://127.0.0.3:1080",
        "exists 1 http://bob:****@127.0.0.2:3128",
    ]

    listed = run_gateway(["proxies", "list", "--json"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    doc = [json.loads(line) for line in _output(listed).splitlines()]  # one per proxy
    assert [(p["id"], p["url"]) for p in doc] == [
        (1, "http://bob:****@127.0.0.2:3128"),
        (2, "socks5://127.0.0.3:1080"),
    ]
    table = run_gateway(["proxies", "list"], env, tmp_path)
    assert "http://bob:****@127.0.0.2:3128" in _output(table)

    removed = run_gateway(["proxies", "remove", "1", "99"], env, tmp_path)
    assert removed.returncode == 1
    assert _output(removed).strip() == "removed 1"
    assert "no proxy with id 99" in removed.stderr
    after = _output(run_gateway(["proxies", "list", "--json"], env, tmp_path)).splitlines()
    assert [json.loads(line)["id"] for line in after] == [2]

    for result in (added, listed, table, removed):
        assert SECRET not in result.stdout + result.stderr


def test_invalid_url_is_refused_without_echoing_it(
    backends: test_backends.TestBackends, database_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    env = _env(backends, database_url, redis_prefix)
    bad = f"ftp://eve:{SECRET}@127.0.0.2:21"
    result = run_gateway(["proxies", "add", "http://127.0.0.2:3128", bad], env, tmp_path)
    assert result.returncode == 2
    assert "proxy URL #2 is invalid" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    # Nothing was stored: validation happens before the transaction.
    listed = run_gateway(["proxies", "list", "--json"], env, tmp_path)
    assert _output(listed) == ""  # an empty list prints nothing
    no_port = run_gateway(["proxies", "add", "http://127.0.0.2"], env, tmp_path)
    assert no_port.returncode == 2
    assert "port" in no_port.stderr
