"""The pool's Lua scripts, each prefixed with the shared `common.lua` prelude.

Every state change of the pool is one script, so it is atomic across gateway replicas
without locks; scripts run by EVALSHA (redis-py loads them on a NOSCRIPT miss).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_DIR = Path(__file__).resolve().parent / "lua"
NAMES = ("lease", "release", "rotate", "sync", "tick", "status")


@cache
def source(name: str) -> str:
    """Full source of one script: the prelude, then its body."""
    if name not in NAMES:
        raise KeyError(name)
    prelude = (_DIR / "common.lua").read_text(encoding="utf-8")
    return prelude + "\n" + (_DIR / f"{name}.lua").read_text(encoding="utf-8")
