"""Rotating HMAC signing keys in settings: `kid:secret` pairs, newest first.

Shared by `DOWNLOAD_SIGNING_KEYS` and `STREAM_TICKET_KEYS`: the first key signs, every
listed key verifies, so a key is rotated by putting a new one in front and dropping the
old one once the longest-lived token it signed has expired.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import SecretStr

KEY_ID = r"^[A-Za-z0-9_-]{1,32}$"
MIN_SECRET_CHARS = 32


def parse_signing_keys(name: str, value: object) -> object:
    """`kid:secret,kid:secret` as pairs (other values are left to pydantic)."""
    if not isinstance(value, str):
        return value
    keys: list[tuple[str, str]] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        kid, sep, secret = part.partition(":")
        if not sep or not secret:
            raise ValueError(f"{name} must be comma-separated kid:secret pairs")
        keys.append((kid, secret))
    return keys


def check_signing_keys(name: str, keys: Sequence[tuple[str, SecretStr]]) -> None:
    """Refuse malformed or duplicate key ids and short secrets, naming the setting."""
    seen: set[str] = set()
    for kid, secret in keys:
        if not re.match(KEY_ID, kid):
            raise ValueError(f"{name}: key id {kid!r} must match {KEY_ID}")
        if kid in seen:
            raise ValueError(f"{name}: key id {kid!r} appears twice")
        if len(secret.get_secret_value()) < MIN_SECRET_CHARS:
            raise ValueError(
                f"{name}: the secret of {kid!r} needs at least {MIN_SECRET_CHARS} characters"
            )
        seen.add(kid)
