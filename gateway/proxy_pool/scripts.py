"""The pool's Lua scripts (`lua/`), each prefixed with the shared `common.lua` prelude.

Every state change of the pool is one script, so it is atomic across gateway replicas
without locks; scripts run by EVALSHA (redis-py loads them on a NOSCRIPT miss).
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from gateway.kit.lua import register_scripts
from gateway.kit.memo import PerOwner

NAMES = ("lease", "release", "rotate", "sync", "tick", "status")

# A pool object is built per request; hashing the script sources once per client keeps
# that cheap.
scripts_for: PerOwner[Redis, dict[str, AsyncScript]] = PerOwner(
    lambda redis: register_scripts(redis, "gateway.proxy_pool", NAMES, prelude="common")
)
