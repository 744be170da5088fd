"""Lua loading: the prelude comes first, and registered scripts run on real Redis."""

from __future__ import annotations

from redis.asyncio import Redis

from gateway.kit.lua import lua_source, register_scripts
from gateway.work.scripts import _NAMES


def test_prelude_is_prepended() -> None:
    common = lua_source("gateway.work", "common")
    lease = lua_source("gateway.work", "lease")
    assert lua_source("gateway.work", "lease", prelude="common") == common + "\n" + lease


async def test_every_shipped_script_compiles_on_redis(backends_redis: Redis) -> None:
    for package, names in (
        ("gateway.work", _NAMES),
        ("gateway.proxy_pool", ("lease", "release", "rotate", "sync", "tick", "status")),
    ):
        scripts = register_scripts(backends_redis, package, names, prelude="common")
        for script in scripts.values():
            # SCRIPT LOAD compiles without running: a syntax error fails here.
            assert await backends_redis.script_load(script.script) == script.sha
    ratelimit = register_scripts(backends_redis, "gateway.public", ["ratelimit"])["ratelimit"]
    assert await backends_redis.script_load(ratelimit.script) == ratelimit.sha
