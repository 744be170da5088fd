"""The HTTP shape of a cache-served answer, shared by the properties routes and the
cache-hit shortcut so both send byte-for-byte the same response."""

from __future__ import annotations

from gateway.public.cache import Served

RawHeaders = list[tuple[bytes, bytes]]

# Answers are cached per tier, not per caller, but they are only served to authenticated
# callers: shared caches must key on the credentials.
_VARY = (b"vary", b"Authorization, X-API-Key")


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names `etag` (weak comparison, `*` matches anything)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(c.strip().removeprefix("W/") == bare for c in if_none_match.split(","))


def served_response(served: Served, if_none_match: str | None) -> tuple[int, RawHeaders, bytes]:
    """Status, headers and body for `served`: 304 when the caller's validator matches."""
    headers: RawHeaders = [
        (b"x-cache", served.x_cache.encode("latin-1")),
        (b"age", str(served.age).encode("latin-1")),
        (b"etag", served.etag.encode("latin-1")),
        (b"cache-control", served.cache_control.encode("latin-1")),
        _VARY,
    ]
    if served.status == 200 and etag_matches(if_none_match, served.etag):
        return 304, headers, b""
    headers.append((b"content-length", str(len(served.body)).encode("latin-1")))
    headers.append((b"content-type", served.content_type.encode("latin-1")))
    return served.status, headers, served.body
