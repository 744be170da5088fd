"""Signed tokens: `<base64url(JSON payload)>.<base64url(HMAC-SHA256 of the first part)>`.

One implementation for every token the gateway hands out and later takes back as the
credential itself (download links, stream tickets). Key rotation: the first configured
key signs, every configured key verifies; the key id (`kid`) travels in the payload, so
verification tries exactly one key, and dropping a key invalidates what it signed.

`verify` checks shape, key, then signature, and only then returns the payload: a forged
or tampered token learns nothing about its claims. Signatures are compared as text with
`hmac.compare_digest` (base64's unused trailing bits would let two spellings of one
signature both pass, and a token must have exactly one form). Tokens are credentials:
nothing here logs one, and errors never echo it. Expiry and the payload's own fields are
the caller's to check, with the error its clients expect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

# Far above any token we sign (a few hundred characters); a longer one is not decoded.
MAX_TOKEN_CHARS = 2048
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class Refusal(StrEnum):
    """Why a token is not genuine."""

    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"


class InvalidToken(Exception):
    """A token that is malformed, signed by an unknown key, or tampered with."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


def b64encode(raw: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Unpadded base64url back to bytes (`ValueError` when it is not)."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, signed_part: str) -> bytes:
    return hmac.new(key, signed_part.encode("ascii"), hashlib.sha256).digest()


class SignedTokens:
    """Signs with the first key and verifies with any of `keys` (`(kid, secret)`)."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        self._keys = dict(keys)
        self._signing = keys[0] if keys else None

    @property
    def can_sign(self) -> bool:
        """Whether a signing key is configured."""
        return self._signing is not None

    @property
    def signing_kid(self) -> str:
        """The id of the key that signs (RuntimeError when none is configured)."""
        if self._signing is None:
            raise RuntimeError("no signing key configured")
        return self._signing[0]

    def sign_payload(self, payload: Mapping[str, Any]) -> str:
        """A token carrying `payload`, whose `kid` must name the signing key."""
        if self._signing is None:
            raise RuntimeError("no signing key configured")
        kid, key = self._signing
        if payload.get("kid") != kid:
            raise ValueError("the payload's kid must be the signing key's")
        body = b64encode(json.dumps(dict(payload), separators=(",", ":")).encode())
        return f"{body}.{b64encode(_mac(key, body))}"

    def verify_payload(self, token: str) -> dict[str, Any]:
        """The genuine token's payload (a JSON object with a string `kid`)."""
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise InvalidToken(Refusal.MALFORMED)
        body, signature = token.split(".")
        try:
            raw = json.loads(b64decode(body))
        except ValueError:  # bad base64 or JSON (UnicodeDecodeError is one too)
            raise InvalidToken(Refusal.MALFORMED) from None
        if not isinstance(raw, dict) or not isinstance(raw.get("kid"), str):
            raise InvalidToken(Refusal.MALFORMED)
        key = self._keys.get(raw["kid"])
        if key is None:
            raise InvalidToken(Refusal.UNKNOWN_KEY)
        expected = b64encode(_mac(key, body))
        if not hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace")):
            raise InvalidToken(Refusal.BAD_SIGNATURE)
        return raw
