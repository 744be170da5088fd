"""The gateway's rate-limit headers, read: `RateLimit-Policy`, `RateLimit`, `Retry-After`.

The gateway sends the IETF draft's Structured Field form, one item per policy:

    RateLimit-Policy: "burst";q=20;w=10, "daily";q=2000;w=86400
    RateLimit: "burst";r=19;t=1, "daily";r=1987;t=40213

`r` is what remains and `t` the seconds until it is back; a policy with `r=0` is
exhausted for `t` seconds. The parser is lenient: an item it cannot read is skipped, so a
proxy that mangles the header costs the hint, never the request.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

_ITEM = re.compile(r'\s*"(?P<name>[^"]*)"(?P<params>(?:\s*;\s*[a-z*][a-z0-9_.*-]*(?:=[^;,]*)?)*)')
_PARAM = re.compile(r";\s*([a-z*][a-z0-9_.*-]*)(?:=([^;,]*))?")


@dataclass(frozen=True)
class Policy:
    """One limit the caller is under: `quota` units per `window_s` seconds."""

    name: str
    quota: int | None
    window_s: int | None


@dataclass(frozen=True)
class Remaining:
    """Where the caller stands in one policy: `remaining` units, full again in `reset_s`."""

    name: str
    remaining: int | None
    reset_s: int | None


@dataclass(frozen=True)
class RateLimit:
    """The policies and the caller's standing in each, from one response."""

    policies: tuple[Policy, ...]
    limits: tuple[Remaining, ...]

    def wait_s(self) -> float | None:
        """Seconds until every exhausted policy has room again (None: none exhausted)."""
        waits = [r.reset_s for r in self.limits if r.remaining == 0 and r.reset_s is not None]
        return float(max(waits)) if waits else None

    def remaining(self, name: str) -> int | None:
        """What remains of the named policy (`burst`, `daily`), if the answer said."""
        for item in self.limits:
            if item.name == name:
                return item.remaining
        return None


def _items(value: str) -> list[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = []
    for part in value.split(","):
        match = _ITEM.match(part)
        if match is None:
            continue
        params = {k: v.strip() for k, v in _PARAM.findall(match.group("params"))}
        out.append((match.group("name"), params))
    return out


def _int(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """The rate-limit state a response carries (None when it carries none)."""
    policy_header = headers.get("ratelimit-policy")
    state_header = headers.get("ratelimit")
    if policy_header is None and state_header is None:
        return None
    policies = tuple(
        Policy(name, _int(p.get("q")), _int(p.get("w"))) for name, p in _items(policy_header or "")
    )
    limits = tuple(
        Remaining(name, _int(p.get("r")), _int(p.get("t")))
        for name, p in _items(state_header or "")
    )
    return RateLimit(policies, limits)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date (None when absent or bad)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
