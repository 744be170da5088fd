"""Webhook signatures per the Standard Webhooks specification (https://www.standardwebhooks.com/).

Every delivery carries three headers::

    webhook-id:        msg_2f1c...            the delivery's id, the same on every retry
    webhook-timestamp: 1767225600             Unix seconds when this attempt was signed
    webhook-signature: v1,<base64> v1,<...>   HMAC-SHA256 of "{id}.{timestamp}.{body}"

with one `v1,` signature per secret: while a rotated-out secret is still in its overlap
window both the new and the old secret sign, so a receiver configured with either one
verifies. Receivers use any Standard Webhooks library (`standardwebhooks` for Python and
JavaScript) with the endpoint's `whsec_...` secret; the tests verify with the Python one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _random
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's marker, not a secret
# The specification asks for 24 to 64 bytes of key; we mint 24 and accept the range.
SECRET_BYTES = 24
_MAX_SECRET_BYTES = 64
MESSAGE_ID_PREFIX = "msg_"

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class InvalidSecret(ValueError):
    """A secret is not `whsec_` followed by base64 of 24 to 64 bytes (never says which)."""


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    """The HMAC key inside `whsec_<base64>`; `InvalidSecret` if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("a webhook secret is whsec_ followed by base64") from None
    if not SECRET_BYTES <= len(key) <= _MAX_SECRET_BYTES:
        raise InvalidSecret(f"a webhook secret holds {SECRET_BYTES} to {_MAX_SECRET_BYTES} bytes")
    return key


def new_message_id() -> str:
    """A delivery id (`msg_` + 32 hex): made once per delivery, so retries share it."""
    return MESSAGE_ID_PREFIX + _random.token_hex(16)


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64 HMAC-SHA256>` of `{msg_id}.{timestamp}.{body}` with `secret`."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt, signed by every secret in `secrets`.

    `secrets` is the endpoint's current secret first, then (during a rotation overlap)
    the previous one; duplicates sign once. `timestamp` is the attempt's Unix time in
    seconds: receivers refuse one more than a few minutes off, so sign right before
    sending, and again on each retry.
    """
    if not secrets:
        raise ValueError("a webhook is signed by at least one secret")
    # The id and timestamp are part of the signed text; a "." or space in them would make
    # the text ambiguous and break the header's list syntax.
    if not msg_id or any(c in msg_id for c in ". ,") or not msg_id.isprintable():
        raise ValueError("a webhook id is printable and has no '.', ' ' or ','")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("a webhook timestamp is non-negative Unix seconds (an int)")
    unique = list(dict.fromkeys(secrets))
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: " ".join(signature(s, msg_id, timestamp, body) for s in unique),
    }
