"""Lua scripts shipped in a capability's `lua/` folder, registered once per Redis client.

Redis has no `require`: a capability's shared helpers live in `lua/common.lua` and are
prepended to each script. Scripts run by EVALSHA; redis-py loads one on a NOSCRIPT miss,
so a Redis restart costs one extra round trip per script, not an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources as importlib_resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def lua_source(package: str, name: str, *, prelude: str | None = None) -> str:
    """The source of `package`'s `lua/<name>.lua`, after `lua/<prelude>.lua` if given."""
    folder = importlib_resources.files(package) / "lua"
    body = (folder / f"{name}.lua").read_text(encoding="utf-8")
    if prelude is None:
        return body
    return (folder / f"{prelude}.lua").read_text(encoding="utf-8") + "\n" + body


def register_scripts(
    redis: Redis, package: str, names: Iterable[str], *, prelude: str | None = None
) -> dict[str, AsyncScript]:
    """Register each named script of `package` on `redis` (no round trip until first use)."""
    return {
        name: redis.register_script(lua_source(package, name, prelude=prelude)) for name in names
    }
